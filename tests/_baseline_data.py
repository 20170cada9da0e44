"""Small seeded K-line series for the baseline tests (no files, no network)."""

from __future__ import annotations

import numpy as np


def kline_series(n: int = 600, seed: int = 0) -> np.ndarray:
    """(n, 6) OHLCVA bars of a GARCH-like random walk with valid bar geometry."""
    rng = np.random.default_rng(seed)
    vol = np.exp(np.convolve(rng.normal(0, 0.3, n), np.ones(20) / 20, mode="same")) * 0.01
    close = 100 * np.exp(np.cumsum(vol * rng.standard_t(5, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol)))
    volume = np.exp(10 + 30 * vol + rng.normal(0, 0.3, n))
    amount = volume * (open_ + high + low + close) / 4
    return np.column_stack([open_, high, low, close, volume, amount])


def windows(series: np.ndarray, t: int = 20, stride: int = 1) -> np.ndarray:
    idx = np.arange(0, len(series) - t + 1, stride)
    return np.stack([series[i:i + t] for i in idx])
