"""Coupled multi-asset panels: does a generator keep the co-movement of assets that share timestamps?

A panel is the same time range of A assets: `bars` of shape (n_panels, A, T, 6) with raw OHLCVA
prices. Metrics use close-to-close log returns within each asset's sequence:
- cross-asset Pearson correlation per panel, averaged over panels (panels where an asset has
  zero return variance are dropped from the mean and counted);
- the eigenvalue spectrum of that mean matrix (the largest eigenvalue is the "market mode");
- empirical lower-tail dependence λ_L of the assets' pooled returns (do assets crash together?);
- a cross-sectional discriminative score: the §3 classifier sees the whole panel at once.
`panel_calibration_rows` gives the real-vs-real rows that tell each metric's noise level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from kronos_synth.data.errors import InputError
from kronos_synth.data.splits import PERIODS
from kronos_synth.metrics.discriminative import DiscriminativeResult, discriminative_score
from kronos_synth.metrics.features import is_volume_free, normalize_sequences
from kronos_synth.metrics.stats import repeat_seeds

HALVES = "real (first half vs second half)"
SHUFFLED_ASSETS = "shuffled assets"
OTHER_DAYS = "assets from other days"
DAY_NS = 86_400_000_000_000


def _check(bars: np.ndarray) -> np.ndarray:
    x = np.asarray(bars, np.float64)
    if x.ndim != 4 or x.shape[-1] != 6 or x.shape[1] < 2 or x.shape[2] < 3:
        raise ValueError(f"expected panels of shape (n, A ≥ 2, T ≥ 3, 6), got {x.shape}")
    return x


def panel_returns(bars: np.ndarray) -> np.ndarray:
    """(n, A, T, 6) bars → (n, A, T−1) close-to-close log returns."""
    return np.diff(np.log(_check(bars)[..., 3]), axis=-1)


def correlation_matrices(bars: np.ndarray) -> np.ndarray:
    """(n, A, A) Pearson correlation of returns across assets per panel; NaN rows/columns where an
    asset's returns have zero variance in that panel."""
    r = panel_returns(bars)
    rc = r - r.mean(axis=-1, keepdims=True)
    cov = np.einsum("nat,nbt->nab", rc, rc)
    sd = np.sqrt(np.einsum("naa->na", cov))
    sd = np.where(sd > 0, sd, np.nan)
    return cov / (sd[:, :, None] * sd[:, None, :])


def _mean(corr: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean over panels whose matrix is finite, and how many panels were dropped."""
    ok = np.isfinite(corr).all(axis=(1, 2))
    a = corr.shape[1]
    mean = corr[ok].mean(axis=0) if ok.any() else np.full((a, a), np.nan)
    return mean, int((~ok).sum())


def mean_correlation(bars: np.ndarray) -> np.ndarray:
    """(A, A) mean over panels of the per-panel correlation matrices (degenerate panels dropped)."""
    return _mean(correlation_matrices(bars))[0]


def volume_comovement(bars: np.ndarray) -> float:
    """Mean over panels of the mean pairwise correlation across assets of log-volume changes
    (diff of log(1 + volume)): how much the assets' trading activity moves together. Panels where an
    asset's volume does not change are skipped."""
    v = np.diff(np.log1p(np.maximum(_check(bars)[..., 4], 0.0)), axis=-1)
    vc = v - v.mean(axis=-1, keepdims=True)
    cov = np.einsum("nat,nbt->nab", vc, vc)
    sd = np.sqrt(np.einsum("naa->na", cov))
    ok = (sd > 0).all(axis=1)
    if not ok.any():
        return float("nan")
    corr = cov[ok] / (sd[ok][:, :, None] * sd[ok][:, None, :])
    a = corr.shape[1]
    return float(corr[:, ~np.eye(a, dtype=bool)].mean())


def _off_diagonal(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(len(m), dtype=bool)]


@dataclass
class CorrelationError:
    """Mean correlation matrices of both sets compared (`dropped_*`: panels with a zero-variance asset)."""

    #: ‖C_real − C_synth‖_F of the mean correlation matrices
    frobenius: float
    mean_pairwise_real: float
    mean_pairwise_synthetic: float
    #: mean over asset pairs of |C_real − C_synth|
    mean_abs_pairwise_diff: float
    dropped_real: int
    dropped_synthetic: int

    def to_dict(self) -> dict:
        return dict(vars(self))


def _correlation_error(cr: np.ndarray, cs: np.ndarray, dr: int, ds: int) -> CorrelationError:
    return CorrelationError(float(np.linalg.norm(cr - cs)), float(_off_diagonal(cr).mean()),
                            float(_off_diagonal(cs).mean()), float(np.abs(_off_diagonal(cr - cs)).mean()), dr, ds)


def correlation_error(real: np.ndarray, synthetic: np.ndarray) -> CorrelationError:
    """Frobenius distance and mean pairwise correlations of the two sets' mean correlation matrices."""
    (cr, dr), (cs, ds) = _mean(correlation_matrices(real)), _mean(correlation_matrices(synthetic))
    return _correlation_error(cr, cs, dr, ds)


def _spectrum(mean_corr: np.ndarray) -> np.ndarray:
    if not np.isfinite(mean_corr).all():
        return np.full(len(mean_corr), np.nan)
    return np.sort(np.linalg.eigvalsh(mean_corr))[::-1]


def eigen_spectrum(bars: np.ndarray) -> np.ndarray:
    """(A,) eigenvalues of the mean correlation matrix, largest first (they sum to A)."""
    return _spectrum(mean_correlation(bars))


@dataclass
class SpectrumComparison:
    """Eigenvalue spectra of both mean correlation matrices, largest first."""

    real: list[float]
    synthetic: list[float]
    largest_real: float
    largest_synthetic: float
    #: |λ1_synth − λ1_real| / λ1_real
    relative_error: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def _compare_spectra(er: np.ndarray, es: np.ndarray) -> SpectrumComparison:
    return SpectrumComparison(er.tolist(), es.tolist(), float(er[0]), float(es[0]),
                              float(abs(es[0] - er[0]) / er[0]))


def compare_spectra(real: np.ndarray, synthetic: np.ndarray) -> SpectrumComparison:
    """The largest eigenvalue of each set's mean correlation matrix and its relative error."""
    return _compare_spectra(eigen_spectrum(real), eigen_spectrum(synthetic))


def lower_tail_dependence(bars: np.ndarray, q: float = 0.05) -> float:
    """Empirical λ_L = P(U_j ≤ q | U_i ≤ q), averaged over ordered asset pairs i ≠ j.

    Each asset's returns are pooled over panels and steps (same order for every asset, so a
    position is one timestamp) and turned into pseudo-observations rank / (N + 1). No per-panel
    demeaning. Independent assets give ≈ q, comonotone ones 1.
    """
    r = panel_returns(bars)
    pooled = r.transpose(1, 0, 2).reshape(r.shape[1], -1)
    low = rankdata(pooled, axis=1) / (pooled.shape[1] + 1) <= q
    hits = low.astype(np.float64) @ low.T.astype(np.float64)  # [i, j] = #(U_i ≤ q and U_j ≤ q)
    cond = hits / np.maximum(np.diag(hits)[:, None], 1)
    return float(_off_diagonal(cond).mean()) if low.any() else float("nan")


def panel_features(bars: np.ndarray, *, include_volume: bool = True, cross: bool = True) -> np.ndarray:
    """(n, A, T, 6) → (n, T, A·F + C): each asset's sequence normalized on its own (§2), assets side by side,
    then (`cross`) the C = A(A−1)/2 per-step co-movement channels of `cross_products` (twice that with volume).

    Why the cross channels: from per-asset features alone the classifier has to learn to multiply two assets'
    returns before it can see their correlation, and a few hundred panels per class do not teach it that — on
    crypto-panel it could not tell real panels from the same panels with each asset taken from another day
    (docs/scenarios.md). The running mean of the products ends at the correlation itself."""
    x = _check(bars)
    n, a, t, _ = x.shape
    f = normalize_sequences(x.reshape(n * a, t, 6), include_volume=include_volume)
    f = f.reshape(n, a, t, -1).transpose(0, 2, 1, 3).reshape(n, t, -1)
    if not cross:
        return f
    parts = [f, cross_products(np.log(np.maximum(x[..., 3], 1e-300)))]
    if include_volume:
        parts.append(cross_products(np.log1p(np.maximum(x[..., 4], 0.0))))
    return np.concatenate(parts, axis=-1).astype(f.dtype, copy=False)


def cross_products(levels: np.ndarray, clip: float = 4.0) -> np.ndarray:
    """(n, A, T) log levels → (n, T, A(A−1)/2): per step, the running mean so far of the product of two assets'
    changes, each standardised within its own sequence and the product clipped at ±`clip`; step 0 (no change)
    is 0. At the last step a pair's channel is their correlation (before clipping)."""
    d = np.diff(levels, axis=-1)
    d = d - d.mean(axis=-1, keepdims=True)
    sd = d.std(axis=-1, keepdims=True)
    z = np.divide(d, sd, out=np.zeros_like(d), where=sd > 0)
    i, j = np.triu_indices(levels.shape[1], k=1)
    prod = np.clip(z[:, i] * z[:, j], -clip, clip)  # (n, C, T − 1)
    running = np.cumsum(prod, axis=-1) / np.arange(1, prod.shape[-1] + 1)
    return np.concatenate([np.zeros_like(running[..., :1]), running], axis=-1).transpose(0, 2, 1)


def panel_discriminative_score(real: np.ndarray, synthetic: np.ndarray, **kwargs) -> DiscriminativeResult:
    """§3 paper-protocol classifier on whole panels: the LSTM reads all A assets at each step.

    Volume and amount are dropped for both sets when either is volume-free. `kwargs` go to
    `discriminative_score` (repeats, seed, epochs, n, threads, real_time, synthetic_time, …).
    """
    volume_free = is_volume_free(real) or is_volume_free(synthetic)
    fr = panel_features(real, include_volume=not volume_free)
    fs = panel_features(synthetic, include_volume=not volume_free)
    out = discriminative_score(fr, fs, protocol="paper", **kwargs)
    out.settings.update(volume_free=volume_free, n_assets=int(np.shape(real)[1]),
                        input="whole panel: A assets × per-asset normalized features per step, plus per-step "
                              "products of each asset pair's standardised return (and log-volume) changes")
    return out


@dataclass
class PanelComparison:
    """Every panel metric of real vs synthetic; `reference` holds the same (without the classifier)
    for real vs another real set — the real-vs-real scale of "good"."""

    n_real: int
    n_synthetic: int
    n_assets: int
    correlation: CorrelationError
    spectrum: SpectrumComparison
    q: float
    tail_dependence_real: float
    tail_dependence_synthetic: float
    volume_comovement_real: float = float("nan")
    volume_comovement_synthetic: float = float("nan")
    discriminative: DiscriminativeResult | None = None
    reference: PanelComparison | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n_real": self.n_real, "n_synthetic": self.n_synthetic, "n_assets": self.n_assets,
                "correlation": self.correlation.to_dict(), "spectrum": self.spectrum.to_dict(),
                "tail_dependence": {"q": self.q, "real": self.tail_dependence_real,
                                    "synthetic": self.tail_dependence_synthetic},
                "volume_comovement": {"real": self.volume_comovement_real,
                                      "synthetic": self.volume_comovement_synthetic},
                "discriminative": self.discriminative.to_dict() if self.discriminative else None,
                "reference": self.reference.to_dict() if self.reference else None, "settings": self.settings}


def compare_panels(real: np.ndarray, synthetic: np.ndarray, *, real_reference: np.ndarray | None = None,
                   seed: int = 0, repeats: int = 5, epochs: int = 20, n: int | None = None,
                   threads: int | None = None, discriminative: bool = True, q: float = 0.05,
                   real_time: np.ndarray | None = None, synthetic_time: np.ndarray | None = None
                   ) -> PanelComparison:
    """All panel metrics of `synthetic` against `real` (both (n, A, T, 6), same A and T).

    `discriminative=False` skips the classifier (the slow part). `real_reference` (e.g. the train
    period's panels) adds the same metrics for real vs that set as `reference`.
    """
    real, synthetic = _check(real), _check(synthetic)
    if real.shape[1:3] != synthetic.shape[1:3]:
        raise ValueError(f"real {real.shape} and synthetic {synthetic.shape} need the same assets and length")
    (cr, dr), (cs, ds) = _mean(correlation_matrices(real)), _mean(correlation_matrices(synthetic))
    disc = None
    if discriminative:
        disc = panel_discriminative_score(real, synthetic, seed=seed, repeats=repeats, epochs=epochs, n=n,
                                          threads=threads, real_time=real_time, synthetic_time=synthetic_time)
    ref = None
    if real_reference is not None:
        ref = compare_panels(real, real_reference, discriminative=False, q=q)
    return PanelComparison(len(real), len(synthetic), real.shape[1], _correlation_error(cr, cs, dr, ds),
                           _compare_spectra(_spectrum(cr), _spectrum(cs)), q, lower_tail_dependence(real, q),
                           lower_tail_dependence(synthetic, q), volume_comovement(real),
                           volume_comovement(synthetic), disc, ref,
                           {"seed": seed, "returns": "close-to-close log returns within each asset's sequence"})


def shuffle_assets(bars: np.ndarray, rng: np.random.Generator, groups: np.ndarray | None = None) -> np.ndarray:
    """Each asset's sequence taken from a random panel, a different one per asset (when n ≥ A):
    co-movement across assets is destroyed, every asset's set of sequences is kept exactly.

    `groups` (n,): draw only among panels of the same group — for example the time of day a panel starts, so
    the assets' intraday patterns stay aligned and only their co-movement from day to day is gone."""
    x = np.asarray(bars)
    n, a = x.shape[:2]
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    src = np.empty((n, a), dtype=np.int64)  # source panel of each asset
    for g in range(int(labels.max()) + 1 if n else 0):
        members = np.flatnonzero(labels == g)
        m = len(members)
        perm = members[rng.permutation(m)]
        shift = rng.choice(m, size=a, replace=m < a)
        src[members] = perm[(np.arange(m)[:, None] + shift[None, :]) % m]
    return x[src, np.arange(a)[None, :]]


def panel_calibration_rows(real: np.ndarray, seed: int = 0, *, real_time: np.ndarray | None = None,
                           **kwargs) -> dict[str, PanelComparison]:
    """The real-vs-real rows every panel metric needs, from real panels stored in time order.

    - `real (first half vs second half)`: the first half of the panels against the second half.
      Both are real, so every difference is noise plus the change of regime between the two
      periods — the level below which a synthetic set's error means nothing (discriminative ≈ 0.5).
    - `shuffled assets`: the first half against the second half with each asset's sequence taken
      from another random panel (`shuffle_assets`). Marginals are real, co-movement is gone:
      its mean pairwise correlation is ≈ 0, and the panel discriminative score must detect it
      (error well below 0.5); if it does not, the classifier cannot see cross-asset structure.
    - `assets from other days` (intraday panels with `real_time`, when the second half has at least A panels
      per time of day): the same, but each asset from another day's panel starting at the same time of day
      (`other_days`), so intraday patterns still line up and only the co-movement is missing — the check
      that the classifier sees co-movement itself.
    `real_time` ((n, 2) first/last bar times of the panels) splits the classifier's train and test
    panels by time blocks (`discriminative_score`): overlapping stride-1 panels split at random leak.
    The shuffled set mixes times, so its side is split at random. `kwargs` go to `compare_panels`
    (repeats, epochs, discriminative, q, …).
    """
    x = _check(real)
    h = len(x) // 2
    a, b = x[:h], x[h:2 * h]
    ta, tb = (None, None) if real_time is None else (real_time[:h], real_time[h:2 * h])
    shuffled = shuffle_assets(b, np.random.default_rng(repeat_seeds(seed, 1)[0]))
    rows = {HALVES: compare_panels(a, b, seed=seed, real_time=ta, synthetic_time=tb, **kwargs),
            SHUFFLED_ASSETS: compare_panels(a, shuffled, seed=seed, real_time=ta, **kwargs)}
    other = None if tb is None else other_days(b, np.asarray(tb)[:, 0], np.random.default_rng(repeat_seeds(seed, 2)[1]))
    if other is not None:
        rows[OTHER_DAYS] = compare_panels(a, other, seed=seed, real_time=ta, **kwargs)
    return rows


def other_days(bars: np.ndarray, start_ns: np.ndarray, rng: np.random.Generator,
               min_panels: int = 20) -> np.ndarray | None:
    """Intraday panels (n, A, T, 6) with each asset taken from another day's panel that starts at the same time
    of day (`shuffle_assets` within time-of-day groups): intraday patterns stay aligned, day-to-day co-movement
    is gone. Only groups with at least A panels are used (each asset from a different one). None when the
    panels are not intraday (one time of day) or fewer than `min_panels` remain."""
    x = np.asarray(bars)
    tod = np.asarray(start_ns, dtype=np.int64) % DAY_NS
    labels, inverse, counts = np.unique(tod, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= x.shape[1]
    if len(labels) < 2 or keep.sum() < min_panels:
        return None
    return shuffle_assets(x[keep], rng, groups=tod[keep])


@dataclass
class PanelEvaluation:
    """A panel dataset against the real test-period panels of the same symbols, with the calibration rows."""

    symbols: tuple[str, ...]
    comparison: PanelComparison
    calibration: dict[str, PanelComparison]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"symbols": list(self.symbols), "comparison": self.comparison.to_dict(),
                "calibration": {k: v.to_dict() for k, v in self.calibration.items()}, "settings": self.settings}

    def rows(self) -> dict[str, PanelComparison]:
        return {"synthetic": self.comparison, **{f"calibration: {k}": v for k, v in self.calibration.items()}}

    def lines(self) -> list[str]:
        out = []
        for name, r in self.rows().items():
            c, s = r.correlation, r.spectrum
            d = r.discriminative
            out.append(f"{name}: mean pairwise corr {c.mean_pairwise_synthetic:.3f} (real {c.mean_pairwise_real:.3f}), "
                       f"Frobenius {c.frobenius:.3f}, largest eigenvalue {s.largest_synthetic:.3f} (real "
                       f"{s.largest_real:.3f}), λ_L {r.tail_dependence_synthetic:.3f} (real {r.tail_dependence_real:.3f}), "
                       f"volume co-movement {r.volume_comovement_synthetic:.3f} (real {r.volume_comovement_real:.3f})"
                       + (f", discriminative {d.error.mean:.3f}" + (f" ± {d.error.half_width:.3f}"
                                                                       if np.isfinite(d.error.half_width) else "")
                          if d else ""))
        return out


def evaluate_panels(klines, dataset, *, source: str = "data", test_fraction: float = 0.2, repeats: int = 5,
                    epochs: int = 20, n: int | None = None, seed: int = 0, threads: int | None = None,
                    discriminative: bool = True, period: str = "test") -> PanelEvaluation:
    """Score a panel dataset (`generate --panel`) against every real test-period panel window (stride 1) of its
    symbols in `klines`, plus the real-vs-real calibration rows (`panel_calibration_rows`). `period="validation"`:
    the panel windows of the train period's tail instead (pair with `split="train-head"` contexts)."""
    if period not in PERIODS:
        raise InputError(f"period must be one of {', '.join(PERIODS)}, got {period!r}", param="period")
    from kronos_synth.data.panels import panel_windows

    synthetic, symbols = dataset.to_panels()
    meta = dataset.metadata
    horizon, lookback = synthetic.shape[2], int(meta.get("lookback", 0))
    test = panel_windows(klines, symbols, str(meta["freq"]), horizon, split=period, test_fraction=test_fraction,
                         gap=lookback + horizon, source=source)
    real_time = test.timestamps[:, [0, -1]].astype("int64")
    kw = dict(repeats=repeats, epochs=epochs, n=n, threads=threads, discriminative=discriminative)
    comparison = compare_panels(test.values, synthetic, seed=seed, real_time=real_time, **kw)
    calibration = panel_calibration_rows(test.values, seed=seed, real_time=real_time, **kw)
    return PanelEvaluation(tuple(symbols), comparison, calibration,
                           {"n_real_panels": len(test), "test_fraction": test_fraction, "period": period, "seed": seed,
                            **kw})
