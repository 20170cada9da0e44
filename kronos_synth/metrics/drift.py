"""docs/protocol.md §7: trend-conditional drift — does the generator revert (or extend) the context's trend?"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DriftBucket:
    bucket: int
    trend_low: float
    trend_high: float
    trend_mean: float
    n: int
    generated_return: float
    real_return: float
    gap: float


@dataclass
class DriftResult:
    buckets: list[DriftBucket] = field(default_factory=list)
    #: OLS slope of (generated − real horizon return) on trend; negative = mean-reversion bias
    slope: float = float("nan")
    n: int = 0

    def to_dict(self) -> dict:
        return {"slope": self.slope, "n": self.n, "buckets": [vars(b) for b in self.buckets]}


def trend_drift(context_close: np.ndarray, generated_close: np.ndarray, real_close: np.ndarray,
                n_buckets: int = 5) -> DriftResult:
    """Bucket contexts by trend = last close / mean close − 1 (quintiles by default) and compare the mean
    generated horizon return with the mean real continuation return of the same contexts.

    `context_close` (n, L); `generated_close` and `real_close` (n, H) — the real bars that followed.
    """
    ctx = np.asarray(context_close, np.float64)
    last = ctx[:, -1]
    trend = last / ctx.mean(axis=1) - 1
    gen = np.asarray(generated_close, np.float64)[:, -1] / last - 1
    real = np.asarray(real_close, np.float64)[:, -1] / last - 1
    ok = np.isfinite(trend) & np.isfinite(gen) & np.isfinite(real)
    trend, gen, real = trend[ok], gen[ok], real[ok]
    if trend.size < n_buckets:
        raise ValueError(f"drift needs at least {n_buckets} contexts with real continuations, got {trend.size}")
    edges = np.quantile(trend, np.linspace(0, 1, n_buckets + 1))
    idx = np.clip(np.searchsorted(edges, trend, side="right") - 1, 0, n_buckets - 1)
    buckets = []
    for b in range(n_buckets):
        m = idx == b
        if not m.any():
            continue
        g, r = float(gen[m].mean()), float(real[m].mean())
        buckets.append(DriftBucket(b, float(edges[b]), float(edges[b + 1]), float(trend[m].mean()),
                                   int(m.sum()), g, r, g - r))
    gap = gen - real
    slope = float(np.polyfit(trend, gap, 1)[0]) if np.ptp(trend) > 0 else float("nan")
    return DriftResult(buckets, slope, int(trend.size))
