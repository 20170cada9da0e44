"""OHLC validity of generated bars, counted before any repair, and the optional repair."""

from __future__ import annotations

import numpy as np

#: Violation names, in report order (EVALUATION.md §7, bar validity).
VIOLATIONS = ("high_below_body", "low_above_body", "high_below_low", "price_not_positive",
              "volume_negative", "amount_negative")


def bar_violations(bars: np.ndarray) -> dict[str, int]:
    """Counts of each violation over (..., 6) bars (open, high, low, close, volume, amount), plus
    `invalid_bars`: bars with at least one violation."""
    o, h, lo, c, v, a = (bars[..., j] for j in range(6))
    masks = {
        "high_below_body": h < np.maximum(o, c),
        "low_above_body": lo > np.minimum(o, c),
        "high_below_low": h < lo,
        "price_not_positive": (bars[..., :4] <= 0).any(-1),
        "volume_negative": v < 0,
        "amount_negative": a < 0,
    }
    out = {k: int(m.sum()) for k, m in masks.items()}
    out["invalid_bars"] = int(np.logical_or.reduce(list(masks.values())).sum())
    return out


def repair_bars(bars: np.ndarray) -> np.ndarray:
    """Raise high / lower low to cover open and close; floor volume and amount at 0.

    Prices that are not positive are left alone (no honest repair exists); they stay counted.
    """
    out = np.array(bars, dtype=np.float64, copy=True)
    o, c = out[..., 0], out[..., 3]
    out[..., 1] = np.maximum.reduce([out[..., 1], o, c])
    out[..., 2] = np.minimum.reduce([out[..., 2], o, c])
    out[..., 4:6] = np.maximum(out[..., 4:6], 0.0)
    return out
