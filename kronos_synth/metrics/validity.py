"""EVALUATION §7: bar validity on raw output, and the seam between context and generated bars."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import ks_2samp

#: Checks in report order; each counts bars (a bar can fail several).
CHECKS = (
    "high < max(open, close)",
    "low > min(open, close)",
    "high < low",
    "price <= 0",
    "volume < 0",
    "amount < 0",
    "amount/volume outside [low, high]",
)


@dataclass
class ValidityResult:
    n_bars: int
    counts: dict[str, int]
    #: bars failing at least one check
    invalid_bars: int
    label: str = "raw"

    @property
    def shares(self) -> dict[str, float]:
        return {k: (v / self.n_bars if self.n_bars else float("nan")) for k, v in self.counts.items()}

    @property
    def invalid_share(self) -> float:
        return self.invalid_bars / self.n_bars if self.n_bars else float("nan")

    def to_dict(self) -> dict:
        return {"label": self.label, "n_bars": self.n_bars, "counts": self.counts, "shares": self.shares,
                "invalid_bars": self.invalid_bars, "invalid_share": self.invalid_share}


def bar_validity(bars: np.ndarray, *, label: str = "raw", vwap_rtol: float = 1e-6) -> ValidityResult:
    """Count bars that break OHLC geometry or sign rules; `bars` is (..., 6) raw OHLCVA.

    The VWAP check (amount/volume within [low, high]) runs only where volume > 0 and allows a relative
    `vwap_rtol` so float rounding in exchange data is not counted.
    """
    x = np.asarray(bars, dtype=np.float64).reshape(-1, 6)
    o, h, lo, c, v, a = x.T
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(v > 0, a / np.where(v > 0, v, 1.0), np.nan)
    tol = vwap_rtol * np.abs(vwap)
    masks = {
        CHECKS[0]: h < np.maximum(o, c),
        CHECKS[1]: lo > np.minimum(o, c),
        CHECKS[2]: h < lo,
        CHECKS[3]: (x[:, :4] <= 0).any(axis=1),
        CHECKS[4]: v < 0,
        CHECKS[5]: a < 0,
        CHECKS[6]: (v > 0) & ((vwap < lo - tol) | (vwap > h + tol)),
    }
    any_bad = np.zeros(len(x), dtype=bool)
    for m in masks.values():
        any_bad |= m
    return ValidityResult(len(x), {k: int(m.sum()) for k, m in masks.items()}, int(any_bad.sum()), label)


@dataclass
class SeamResult:
    """Relative gap first generated open / last context close − 1 against the real next-bar gaps."""

    n: int
    synthetic_mean_abs_gap: float
    real_mean_abs_gap: float
    synthetic_quantiles: dict[str, float] = field(default_factory=dict)
    real_quantiles: dict[str, float] = field(default_factory=dict)
    ks_statistic: float = float("nan")
    ks_pvalue: float = float("nan")

    def to_dict(self) -> dict:
        return dict(vars(self))


def real_gaps(open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    """open_t / close_{t−1} − 1 along the last axis of consecutive bars (one symbol/segment per row)."""
    o, c = np.asarray(open_, np.float64), np.asarray(close, np.float64)
    return (o[..., 1:] / c[..., :-1] - 1).reshape(-1)


def _q(x: np.ndarray) -> dict[str, float]:
    qs = (0.01, 0.05, 0.5, 0.95, 0.99)
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip(qs, np.quantile(x, qs), strict=True)}


def seam_gap(last_context_close: np.ndarray, first_generated_open: np.ndarray,
             real_next_bar_gaps: np.ndarray) -> SeamResult:
    """Seam between context and generation, compared with real bar-to-bar gaps (two-sample KS)."""
    syn = np.asarray(first_generated_open, np.float64) / np.asarray(last_context_close, np.float64) - 1
    syn = syn[np.isfinite(syn)]
    real = np.asarray(real_next_bar_gaps, np.float64)
    real = real[np.isfinite(real)]
    if syn.size == 0 or real.size == 0:
        raise ValueError("seam needs at least one synthetic and one real gap")
    ks = ks_2samp(syn, real)
    return SeamResult(int(syn.size), float(np.abs(syn).mean()), float(np.abs(real).mean()), _q(syn), _q(real),
                      float(ks.statistic), float(ks.pvalue))
