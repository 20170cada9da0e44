"""Input representation of the released checkpoints: per-window instance normalisation, and the
time-stamp features of the temporal embedding.

`Normalizer` is the small interface other representations implement (fit on the lookback
window, transform, inverse). `InstanceNorm` is the reference: per series and feature, z-score
over the lookback window (population std + 1e-5), clipped to ±5, computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

TIME_FEATURES = ("minute", "hour", "weekday", "day", "month")


@dataclass(frozen=True)
class NormStats:
    """Per-series, per-feature statistics of a lookback window, shape (..., 1, F)."""

    mean: np.ndarray
    std: np.ndarray


@runtime_checkable
class Normalizer(Protocol):
    def fit(self, context: np.ndarray) -> NormStats:
        """Statistics of the lookback window context (..., T, F)."""
        ...

    def transform(self, x: np.ndarray, stats: NormStats) -> np.ndarray:
        """Raw bars (..., T, F) → model space."""
        ...

    def inverse(self, z: np.ndarray, stats: NormStats) -> np.ndarray:
        """Model space (..., T, F) → raw bars."""
        ...


@dataclass(frozen=True)
class InstanceNorm:
    """The reference normalisation (KronosPredictor.predict): float32 throughout."""

    clip: float = 5.0
    eps: float = 1e-5

    def fit(self, context: np.ndarray) -> NormStats:
        x = np.asarray(context, dtype=np.float32)
        if x.ndim < 2 or x.shape[-2] == 0:
            raise ValueError(f"context must be (..., T, F) with T >= 1, got shape {x.shape}")
        return NormStats(x.mean(axis=-2, keepdims=True), x.std(axis=-2, keepdims=True))

    def transform(self, x: np.ndarray, stats: NormStats) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float32) - stats.mean) / (stats.std + np.float32(self.eps))
        return np.clip(z, -self.clip, self.clip)

    def inverse(self, z: np.ndarray, stats: NormStats) -> np.ndarray:
        return np.asarray(z, dtype=np.float32) * (stats.std + np.float32(self.eps)) + stats.mean


def time_features(timestamps) -> np.ndarray:
    """Stamp columns of the temporal embedding: (..., 5) float32 minute, hour, weekday (Mon=0),
    day (1-31), month (1-12), from a DatetimeIndex / Series / datetime64 array of any shape
    (time-zone aware stamps use their local wall-clock time, as pandas does)."""
    if isinstance(timestamps, pd.Series):
        idx, shape = pd.DatetimeIndex(timestamps), (len(timestamps),)
    elif isinstance(timestamps, pd.DatetimeIndex):
        idx, shape = timestamps, (len(timestamps),)
    else:
        arr = np.asarray(timestamps)
        idx, shape = pd.DatetimeIndex(arr.reshape(-1)), arr.shape
    cols = [idx.minute, idx.hour, idx.day_of_week, idx.day, idx.month]
    return np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=-1).reshape(*shape, 5)
