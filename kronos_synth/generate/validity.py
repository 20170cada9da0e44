"""The optional repair of generated bars (`--repair`); counting lives in `metrics.validity`."""

from __future__ import annotations

import numpy as np


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
