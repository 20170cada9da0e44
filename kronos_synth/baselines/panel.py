"""Panel baselines: A assets on common timestamps generated jointly, so cross-asset dependence is kept.

Both are plain classes: `fit(aligned)` takes the training period as a (T, A, 6) array of raw OHLCVA
bars on common timestamps (contiguous), or a list of such runs (never bridged); `sample(n_panels,
horizon, seed)` returns (n_panels, A, horizon, 6) raw bars; same seed → identical output. Each
asset is modelled in the scale-free form of `ScaleFreeTransform` and re-anchored at the closes of
one real training bar, the same bar for every asset of a panel (relative price levels stay real).

- `SynchronizedBlockBootstrap`: the stationary block bootstrap of `BootstrapBaseline`, drawing the
  same time blocks for every asset.
- `ConstantCorrelationGarch` (CCC-GARCH, Bollerslev 1990): per-asset GARCH(1,1)-t with the
  intrabar bar model of `GarchBaseline`; innovations coupled by a Gaussian copula.

DCC-GARCH: `arch` (the well-kept GARCH package used here) has no multivariate model — its tracking
issue #242 is open since 2018 and a CCC/DCC pull request (#854) is unmerged. The PyPI packages that
offer DCC (mgarch 0.3.0, last release 2022; pymgarch, multiarch, multigarch, mvgarch: young
pre-1.0 or single-author projects, none among the widely used packages) are not well kept enough to
depend on, so the constant-correlation model is the spec'd fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from kronos_synth.baselines.base import BaselineError, ScaleFreeTransform, validate_windows
from kronos_synth.baselines.bootstrap import BootstrapBaseline
from kronos_synth.baselines.garch import GarchBaseline


def as_runs(aligned: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One (T, A, 6) array or a list of them → checked runs with the same number of assets."""
    runs = [aligned] if isinstance(aligned, np.ndarray) else list(aligned)
    out = []
    for r in runs:
        r = np.asarray(r, np.float64)
        if r.ndim != 3 or r.shape[-1] != 6:
            raise BaselineError(f"aligned bars must have shape (T, A, 6), got {r.shape}")
        validate_windows(r.transpose(1, 0, 2))  # ≥ 2 assets of ≥ 2 bars, finite, positive prices
        out.append(r)
    if not out or len({r.shape[1] for r in out}) != 1:
        raise BaselineError("need at least one run, and every run must hold the same assets")
    return out


def _check_sample(fitted: bool, n_panels: int, horizon: int) -> None:
    if not fitted:
        raise RuntimeError("fit the panel baseline before sampling")
    if n_panels < 1 or horizon < 1:
        raise BaselineError(f"n_panels and horizon must be ≥ 1, got {n_panels}, {horizon}")


def _assemble(zs: list[np.ndarray], closes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-asset scale-free windows → (n, A, T, 6) raw panels anchored at one real bar's closes."""
    anchors = closes[rng.integers(0, len(closes), size=len(zs[0]))]
    return np.stack([ScaleFreeTransform.inverse(z, anchors[:, a]) for a, z in enumerate(zs)], axis=1)


class SynchronizedBlockBootstrap:
    """Stationary block bootstrap of whole panels: every asset gets the same real time blocks.

    Each asset is a `BootstrapBaseline` on its own bars (close returns, bar shapes, volume, VWAP,
    all scale-free). Block starts and continuations depend only on the run lengths, which all
    assets share, and on the seed; sampling every asset with the same seed therefore draws the
    same bar indices for all of them — the panel is a real cross-section at each step.
    `block` is the mean block length; None → (bars in training)^(1/3), at least 1.
    """

    def __init__(self, block: float | None = None) -> None:
        if block is not None:
            BootstrapBaseline(block=block)  # refuses block < 1
        self.block = block
        self.block_used = 0.0
        self.assets: list[BootstrapBaseline] = []
        self.closes = np.empty((0, 0))

    def fit(self, aligned: np.ndarray | Sequence[np.ndarray]) -> SynchronizedBlockBootstrap:
        runs = as_runs(aligned)
        self.closes = np.concatenate([r[:, :, 3] for r in runs])
        self.block_used = float(self.block) if self.block is not None else max(1.0, len(self.closes) ** (1 / 3))
        self.assets = []
        for a in range(runs[0].shape[1]):
            m = BootstrapBaseline(block=self.block_used)
            m._set_bars([r[:, a] for r in runs])
            self.assets.append(m)
        return self

    def sample(self, n_panels: int, horizon: int, seed: int = 0) -> np.ndarray:
        """(n_panels, A, horizon, 6) raw bars."""
        _check_sample(bool(self.assets), n_panels, horizon)
        zs = []
        for m in self.assets:
            m.window = horizon
            zs.append(m._sample_z(n_panels, seed))  # same seed → same blocks for every asset
        return _assemble(zs, self.closes, np.random.default_rng([seed, 1]))


class ConstantCorrelationGarch:
    """CCC-GARCH: per-asset GARCH(1,1)-t plus a constant correlation of the innovations.

    Each asset is fitted by `GarchBaseline` (one group over all runs): volatility, intrabar shape,
    volume and amount models as there. The dependence is a Gaussian copula: the correlation of
    the normal scores Φ⁻¹(rank / (N + 1)) of the standardized residuals (r − μ) / σ_t, estimated on
    the training period. Simulation draws correlated normals, maps them to uniforms and through
    each asset's fitted unit-variance Student-t quantile, so every asset keeps its own t marginal.
    All assets share one generator seed for the rest of the simulation, so each panel starts from
    the fitted volatility states of one real bar and bootstraps volume residuals from the same
    real bars for every asset. `residual_correlation` is the plain Pearson matrix, for reference.
    """

    def __init__(self, vol_bins: int = 5, burn: int = 1) -> None:
        self.options = {"vol_bins": vol_bins, "burn": burn}
        GarchBaseline(**self.options)  # refuses bad values
        self.assets: list[GarchBaseline] = []
        self.correlation = np.empty((0, 0))
        self.residual_correlation = np.empty((0, 0))
        self.closes = np.empty((0, 0))

    def fit(self, aligned: np.ndarray | Sequence[np.ndarray]) -> ConstantCorrelationGarch:
        runs = as_runs(aligned)
        if sum(len(r) - 1 for r in runs) < 30:
            raise BaselineError("ccc-garch: training data hold fewer than 30 returns — use more history")
        self.assets, resid = [], []
        for a in range(runs[0].shape[1]):
            m = GarchBaseline(**self.options)
            asset_runs = [r[:, a] for r in runs]
            g = m._fit_group(asset_runs)
            m.groups = [g]
            ret = np.concatenate([np.diff(np.log(r[:, 3])) for r in asset_runs])
            resid.append((ret - g["params"]["mu"]) / g["sigma_start"])
            self.assets.append(m)
        e = np.stack(resid)
        self.residual_correlation = np.corrcoef(e)
        self.correlation = np.corrcoef(norm.ppf(rankdata(e, axis=1) / (e.shape[1] + 1)))
        w, v = np.linalg.eigh(self.correlation)
        self._root = v * np.sqrt(np.clip(w, 0.0, None))  # root @ root.T = correlation
        self.closes = np.concatenate([r[:, :, 3] for r in runs])
        return self

    def sample(self, n_panels: int, horizon: int, seed: int = 0) -> np.ndarray:
        """(n_panels, A, horizon, 6) raw bars."""
        _check_sample(bool(self.assets), n_panels, horizon)
        steps = int(self.options["burn"]) + horizon
        x = np.random.default_rng([seed, 0]).standard_normal((n_panels, steps, len(self.assets))) @ self._root.T
        u = np.clip(norm.cdf(x), 1e-12, 1 - 1e-12)
        zs = []
        for a, m in enumerate(self.assets):
            nu = m.groups[0]["params"]["nu"]
            eps = student_t.ppf(u[..., a], nu) * np.sqrt((nu - 2) / nu)
            m.window = horizon
            zs.append(m._simulate(m.groups[0], n_panels, np.random.default_rng([seed, 1]), eps=eps))
        return _assemble(zs, self.closes, np.random.default_rng([seed, 2]))
