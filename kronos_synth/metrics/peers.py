"""The metrics peers publish (Diffusion-TS, TSGBench, Sig-W GANs, PSA-GAN), real vs synthetic, in one result.

- Context-FID (`context_fid.py`): Fréchet distance of TS2Vec embeddings; ideal 0.
- Correlational score (Ni et al. 2020; as reported by Diffusion-TS): L1 distance between the mean
  per-sequence feature correlation matrices; ideal 0.
- Marginal Wasserstein-1 of k-bar close log returns, k = 1, 5, 20, raw and in units of the real std of
  the k-return; ideal 0.
- Distances on the stylized facts of `stylized.py` (ACF of r and |r|, leverage, gain/loss asymmetry).
- Signature MMD with a permutation test (`signature.py`); ideal: MMD² ≈ 0, p-value not small.

Inputs are raw bars (n, T, 6). docs/protocol.md §7 defines every number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import wasserstein_distance

from kronos_synth.metrics.context_fid import ContextFIDResult, EncoderSettings, TS2VecEncoder, context_fid
from kronos_synth.metrics.features import is_volume_free, normalize_sequences
from kronos_synth.metrics.signature import SignatureResult, signature_mmd, valid_sequences
from kronos_synth.metrics.stats import _f
from kronos_synth.metrics.stylized import stylized_facts

#: horizons (bars) of the return Wasserstein distances
LAGS = (1, 5, 20)
#: Ni et al.'s CrossCorrelLoss (and Diffusion-TS, which reports it) divides the L1 sum by 10
CORRELATION_SCALE = 10.0


def mean_correlation(features: np.ndarray) -> np.ndarray:
    """(n, T, F) → (F, F): Pearson correlation of the features over time within each sequence, averaged
    over sequences (pairs with a constant feature in a sequence are left out of that sequence)."""
    x = np.asarray(features, np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((xc * xc).mean(axis=1))
    cov = np.einsum("nti,ntj->nij", xc, xc) / x.shape[1]
    den = sd[:, :, None] * sd[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(den > 1e-12, cov / den, np.nan)
    return np.nanmean(corr, axis=0) if np.isfinite(corr).any() else np.full(cov.shape[1:], np.nan)


def correlational_score(real: np.ndarray, synthetic: np.ndarray, *, volume_free: bool | None = None) -> float:
    """Σ_{i<j} |C_real[i, j] − C_syn[i, j]| / 10 on §2-normalized features (OHLC, log volume, log amount;
    OHLC only for volume-free data), C = `mean_correlation`. 0 = same correlation structure."""
    if volume_free is None:
        volume_free = is_volume_free(real) or is_volume_free(synthetic)
    cr = mean_correlation(normalize_sequences(real, include_volume=not volume_free))
    cs = mean_correlation(normalize_sequences(synthetic, include_volume=not volume_free))
    iu = np.triu_indices(len(cr), 1)
    return float(np.nansum(np.abs(cr - cs)[iu]) / CORRELATION_SCALE)


def k_returns(bars: np.ndarray, k: int) -> np.ndarray:
    """Pooled overlapping k-bar close log returns log c[t+k] − log c[t] within each valid sequence."""
    x = np.asarray(bars, np.float64)[valid_sequences(bars)]
    if k >= x.shape[1] or len(x) == 0:
        return np.empty(0)
    lc = np.log(x[..., 3])
    return (lc[:, k:] - lc[:, :-k]).reshape(-1)


@dataclass
class ReturnW1:
    k: int
    #: W1 of the k-return distributions (log-return units)
    w1: float
    #: w1 / std of the real k-returns: comparable across markets and horizons
    w1_scaled: float
    real_std: float

    def to_dict(self) -> dict:
        return {"k": self.k, "w1": _f(self.w1), "w1_scaled": _f(self.w1_scaled), "real_std": _f(self.real_std)}


def return_wasserstein(real: np.ndarray, synthetic: np.ndarray, lags: tuple[int, ...] = LAGS) -> list[ReturnW1]:
    """Marginal W1 of k-bar returns for each k (NaN when k ≥ T: no k-return fits in a window)."""
    out = []
    for k in lags:
        r, s = k_returns(real, k), k_returns(synthetic, k)
        if r.size == 0 or s.size == 0:
            out.append(ReturnW1(int(k), float("nan"), float("nan"), float("nan")))
            continue
        w, sd = float(wasserstein_distance(r, s)), float(r.std())
        out.append(ReturnW1(int(k), w, w / sd if sd > 0 else float("nan"), sd))
    return out


def _mean_abs_diff(a, b) -> float:
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


@dataclass
class PeerResult:
    """Every peer metric of one real-vs-synthetic pair; each is a distance whose ideal value is 0
    (signature p-value: large)."""

    context_fid: ContextFIDResult | None
    correlational: float
    w1: list[ReturnW1]
    #: mean over lags 1..max_lag of |ACF_real − ACF_syn| of returns / of |returns| / of leverage L(k)
    acf_returns: float
    acf_abs_returns: float
    leverage: float
    #: |real − synthetic| of the gain/loss first-passage ratio (±2σ)
    gain_loss_ratio: float
    max_lag: int
    signature: SignatureResult
    n_real: int
    n_synthetic: int
    settings: dict = field(default_factory=dict)

    @property
    def w1_scaled_mean(self) -> float:
        v = [w.w1_scaled for w in self.w1 if np.isfinite(w.w1_scaled)]
        return float(np.mean(v)) if v else float("nan")

    def w1_at(self, k: int) -> ReturnW1 | None:
        return next((w for w in self.w1 if w.k == k), None)

    def to_dict(self) -> dict:
        return {"context_fid": None if self.context_fid is None else self.context_fid.to_dict(),
                "correlational": _f(self.correlational), "w1": [w.to_dict() for w in self.w1],
                "w1_scaled_mean": _f(self.w1_scaled_mean), "acf_returns": _f(self.acf_returns),
                "acf_abs_returns": _f(self.acf_abs_returns), "leverage": _f(self.leverage),
                "gain_loss_ratio": _f(self.gain_loss_ratio), "max_lag": self.max_lag,
                "signature": self.signature.to_dict(), "n_real": self.n_real, "n_synthetic": self.n_synthetic,
                "settings": self.settings}


def peer_metrics(real: np.ndarray, synthetic: np.ndarray, *, reference: np.ndarray | None = None,
                 encoders: list[TS2VecEncoder] | None = None, repeats: int = 1, seed: int = 0,
                 fid: bool = True, fid_settings: EncoderSettings = EncoderSettings(), lags: tuple[int, ...] = LAGS,
                 max_lag: int | None = None, depth: int = 4, permutations: int = 500, signature_volume: bool = False,
                 volume_free: bool | None = None, threads: int | None = None) -> PeerResult:
    """Every peer metric of real vs synthetic raw bars (n, T, 6).

    Context-FID's encoders train on `reference` (real windows, e.g. the train period; default `real`)
    unless `encoders` are given (`context_fid.fit_encoders`, to share them between rows); `fid=False`
    skips it. `max_lag` defaults to ⌊T / 4⌋ as for the stylized facts.
    """
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if volume_free is None:
        volume_free = is_volume_free(real) or is_volume_free(synthetic)
    t = min(real.shape[1], synthetic.shape[1])
    max_lag = max(1, t // 4) if max_lag is None else min(max_lag, max(1, t // 4))
    cfid = None
    if fid:
        cfid = context_fid(real, synthetic, reference=reference, encoders=encoders, repeats=repeats, seed=seed,
                           settings=fid_settings, threads=threads)
    fr, fs = stylized_facts(real, max_lag), stylized_facts(synthetic, max_lag)
    sig = signature_mmd(real, synthetic, depth=depth, volume=signature_volume and not volume_free,
                        permutations=permutations, seed=seed)
    settings = {"lags": list(lags), "w1_returns": "overlapping k-bar close log returns within each sequence, pooled",
                "correlational": f"sum over feature pairs i<j of |mean per-sequence correlation (real − synthetic)| "
                                 f"/ {CORRELATION_SCALE:g}", "volume_free": bool(volume_free), "seed": seed}
    return PeerResult(cfid, correlational_score(real, synthetic, volume_free=volume_free),
                      return_wasserstein(real, synthetic, lags), _mean_abs_diff(fr["acf_returns"], fs["acf_returns"]),
                      _mean_abs_diff(fr["acf_abs_returns"], fs["acf_abs_returns"]),
                      _mean_abs_diff(fr["leverage"], fs["leverage"]),
                      _mean_abs_diff(fr["gain_loss_ratio"], fs["gain_loss_ratio"]), max_lag, sig,
                      int(len(real)), int(len(synthetic)), settings)
