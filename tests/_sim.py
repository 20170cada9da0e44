"""Simulated K-line windows for the metric tests (no I/O, seeded)."""

from __future__ import annotations

import numpy as np


def bars_from_returns(r: np.ndarray, rng: np.random.Generator, start: float = 100.0) -> np.ndarray:
    """(n, T) log returns → (n, T, 6) valid OHLCVA bars (open = previous close, VWAP inside the range)."""
    close = start * np.exp(np.cumsum(r, axis=1))
    open_ = np.concatenate([np.full((len(r), 1), start), close[:, :-1]], axis=1)
    spread = np.abs(rng.normal(0, 0.002, r.shape))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.exp(rng.normal(10, 0.3, r.shape) + 20 * np.abs(r))
    amount = volume * (open_ + high + low + close) / 4
    return np.stack([open_, high, low, close, volume, amount], axis=-1)


def ar1_returns(n: int, t: int, phi: float, rng: np.random.Generator, sigma: float = 0.01) -> np.ndarray:
    burn = 20
    e = rng.normal(0, sigma, (n, t + burn))
    r = np.zeros_like(e)
    for i in range(1, t + burn):
        r[:, i] = phi * r[:, i - 1] + e[:, i]
    return r[:, burn:]


def garch_returns(n: int, t: int, rng: np.random.Generator, omega=1e-6, alpha=0.1, beta=0.85,
                  df: float | None = None) -> np.ndarray:
    """GARCH(1,1) returns; `df` draws unit-variance Student-t innovations (fatter tails) instead of normals."""
    burn = 200
    if df is None:
        z = rng.standard_normal((n, t + burn))
    else:
        z = rng.standard_t(df, (n, t + burn)) * np.sqrt((df - 2) / df)
    r = np.zeros_like(z)
    var = np.full(n, omega / (1 - alpha - beta))
    for i in range(t + burn):
        r[:, i] = np.sqrt(var) * z[:, i]
        var = omega + alpha * r[:, i] ** 2 + beta * var
    return r[:, burn:]
