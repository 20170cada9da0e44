"""docs/protocol.md §7: bar validity on raw output, and the seam between context and generated bars."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import ks_2samp

from kronos_synth.data.bar_validity import CHECKS, ValidityResult, bar_validity  # noqa: F401 (public here too)


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
