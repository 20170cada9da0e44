"""Input representations: raw OHLCVA bars ↔ the tokenizer's 6-feature input space.

- `levels` — the reference (and what released checkpoints need): the six OHLCVA levels z-scored
  per window over the lookback, clipped ±5.
- `geometry` — per bar: gap log(open / previous close), body log(close / open), upper wick
  log(high / max(open, close)), lower wick log(min(open, close) / low), log1p(volume),
  log1p(amount); z-scored per window over the lookback, clipped. Decoding rebuilds prices from an
  anchor close (the context's last real close) and floors wicks at 0, so every decoded bar is a
  valid bar by construction and the first generated bar continues the context without a seam.
  The tokenizer's reconstruction noise lands on returns and wick sizes instead of on price levels,
  where it would break bar geometry and make returns jitter.

A representation is fitted on the lookback part only; the statistics (plus the anchor) are all
`inverse` needs. Models trained by kronos-synth record theirs in the `kronos_synth.json` sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kronos_synth.data.errors import InputError
from kronos_synth.model.normalize import InstanceNorm

_EPS = 1e-5


@dataclass(frozen=True)
class ReprStats:
    """Per-window statistics (…, 1, 6) of the lookback in model-feature space, and price anchors."""

    mean: np.ndarray
    std: np.ndarray
    first_open: np.ndarray | None = None  # (…,) anchor for decoding the window itself
    last_close: np.ndarray | None = None  # (…,) anchor for decoding what follows the window


class Representation(Protocol):
    name: str
    clip: float

    def fit(self, context: np.ndarray) -> ReprStats: ...

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray: ...

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class Levels:
    """The reference instance normalization (float32, population std + 1e-5, clip ±5)."""

    clip: float = 5.0
    name: str = "levels"

    def fit(self, context: np.ndarray) -> ReprStats:
        s = InstanceNorm(clip=self.clip).fit(context)
        return ReprStats(s.mean, s.std)

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray:
        return InstanceNorm(clip=self.clip).transform(bars, stats)  # type: ignore[arg-type]

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray:
        return InstanceNorm(clip=self.clip).inverse(z, stats).astype(np.float64)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"representation": self.name, "clip": self.clip}


def geometry_features(bars: np.ndarray) -> np.ndarray:
    """(…, T, 6) raw bars → (…, T, 6) gap, body, upper wick, lower wick, log1p volume, log1p amount.

    The first bar's gap is 0 (its previous close is not in the window)."""
    b = np.asarray(bars, dtype=np.float64)
    o, h, lo, c = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    prev = np.concatenate([o[..., :1], c[..., :-1]], axis=-1)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    return np.stack([
        np.log(o / prev),
        np.log(c / o),
        np.log(np.maximum(h, top) / top),  # a bar whose high is below its body gets a zero wick
        np.log(bottom / np.minimum(lo, bottom)),
        np.log1p(np.maximum(b[..., 4], 0.0)),
        np.log1p(np.maximum(b[..., 5], 0.0)),
    ], axis=-1)


def bars_from_geometry(f: np.ndarray, anchor_close: np.ndarray) -> np.ndarray:
    """Inverse of `geometry_features`: prices rebuilt from `anchor_close` (the close before bar 0)."""
    f = np.asarray(f, dtype=np.float64)
    gap, body = f[..., 0], f[..., 1]
    up, down = np.maximum(f[..., 2], 0.0), np.maximum(f[..., 3], 0.0)
    log_close = np.log(np.asarray(anchor_close, dtype=np.float64))[..., None] + np.cumsum(gap + body, axis=-1)
    close = np.exp(log_close)
    open_ = np.exp(log_close - body)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    return np.stack([open_, top * np.exp(up), bottom * np.exp(-down), close,
                     np.expm1(np.maximum(f[..., 4], 0.0)), np.expm1(np.maximum(f[..., 5], 0.0))], axis=-1)


@dataclass(frozen=True)
class Geometry:
    """Returns-and-wicks representation (see module doc)."""

    clip: float = 5.0
    name: str = "geometry"

    def fit(self, context: np.ndarray) -> ReprStats:
        ctx = np.asarray(context, dtype=np.float64)
        f = geometry_features(ctx)
        # The first bar's gap is a placeholder 0: leave it out of the gap statistics.
        mean, std = f.mean(axis=-2, keepdims=True), f.std(axis=-2, keepdims=True)
        if ctx.shape[-2] > 2:
            mean[..., 0] = f[..., 1:, 0].mean(axis=-1, keepdims=True)
            std[..., 0] = f[..., 1:, 0].std(axis=-1, keepdims=True)
        return ReprStats(mean.astype(np.float32), std.astype(np.float32), ctx[..., 0, 0], ctx[..., -1, 3])

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray:
        z = (geometry_features(bars) - stats.mean) / (stats.std + _EPS)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray:
        f = np.asarray(z, dtype=np.float64) * (stats.std + _EPS) + stats.mean
        if continue_context:
            return bars_from_geometry(f, stats.last_close)
        f[..., 0, 0] = 0.0  # decoding the window itself: bar 0 opens at the window's first open
        return bars_from_geometry(f, stats.first_open)

    def to_dict(self) -> dict:
        return {"representation": self.name, "clip": self.clip}


def get_representation(spec: str | dict | None) -> Representation:
    """By name ('levels', 'geometry') or a sidecar dict; None → levels (released checkpoints)."""
    if spec is None:
        return Levels()
    if isinstance(spec, str):
        spec = {"representation": spec}
    name = spec.get("representation", "levels")
    clip = float(spec.get("clip", 5.0))
    if name == "levels":
        return Levels(clip=clip)
    if name == "geometry":
        return Geometry(clip=clip)
    raise InputError(f"unknown representation '{name}' — known: levels, geometry")
