"""Input representations: raw OHLCVA bars ↔ the tokenizer's 6-feature input space.

The single source of representations for generation, training and the round-trip diagnostic.

- `levels` — the reference (and what released checkpoints need): the six OHLCVA levels z-scored
  per window over the lookback, clipped ±5.
- `geometry` — per bar: gap log(open / previous close), body log(close / open), upper wick
  log(high / max(open, close)), lower wick log(min(open, close) / low), log1p(volume), and the
  VWAP position (amount / volume − low) / (high − low) in [0, 1]; z-scored per window over the
  lookback, softly compressed (asinh) and clipped (defaults keep moves up to ≈ 20σ). Decoding rebuilds prices from an anchor close
  (the context's last real close), floors wicks at 0 and clamps the VWAP position to [0, 1], so
  every decoded bar is valid by construction (all `metrics.validity` checks, including
  amount / volume inside [low, high]) and the first generated bar continues the context without a
  seam. The tokenizer's reconstruction noise lands on returns and wick sizes instead of on price
  levels, where it would break bar geometry and make returns jitter.

A representation is fitted on the lookback part only; the statistics (plus the anchor) are all
`inverse` needs. Models trained by kronos-synth record `to_dict()` in their `kronos_synth.json`
sidecar, and `get_representation(sidecar)` rebuilds the same representation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kronos_synth.data.errors import InputError
from kronos_synth.model.normalize import InstanceNorm

_EPS = 1e-5
D_IN = 6  # both representations map a bar to six features


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

    @property
    def d_in(self) -> int: ...

    @property
    def normalization(self) -> str: ...

    def fit(self, context: np.ndarray) -> ReprStats: ...

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray: ...

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray: ...

    def encode(self, values: np.ndarray, lookback: int) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


class _Encode:
    """`encode`: what training feeds the tokenizer — statistics from the lookback only (no future leak)."""

    d_in = D_IN

    def encode(self, values: np.ndarray, lookback: int) -> np.ndarray:
        """Windows (N, T, 6) → model input (N, T, 6) float32, fitted on `values[:, :lookback]`."""
        values = np.asarray(values)
        if values.ndim != 3 or values.shape[-1] != D_IN:
            raise ValueError(f"windows must be (N, T, 6), got {values.shape}")
        if not 0 < lookback <= values.shape[1]:
            raise ValueError(f"lookback {lookback} outside the window of {values.shape[1]} bars")
        return self.transform(values, self.fit(values[:, :lookback]))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Levels(_Encode):
    """The reference instance normalization (float32, population std + 1e-5, clip ±5)."""

    clip: float = 5.0
    name: str = "levels"

    @property
    def normalization(self) -> str:
        return "per window over the lookback: mean/std, std + 1e-5 (reference)"

    def fit(self, context: np.ndarray) -> ReprStats:
        s = InstanceNorm(clip=self.clip).fit(context)
        return ReprStats(s.mean, s.std)

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray:
        return InstanceNorm(clip=self.clip).transform(bars, stats)  # type: ignore[arg-type]

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray:
        return InstanceNorm(clip=self.clip).inverse(z, stats).astype(np.float64)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"representation": self.name, "clip": self.clip}


def vwap_position(bars: np.ndarray) -> np.ndarray:
    """(amount / volume − low) / (high − low) in [0, 1], where low/high cover open and close.

    0.5 where it is undefined (volume 0 — also volume-free data — or high == low); clamped to
    [0, 1] where the data's own VWAP lies outside the bar (bad exchange data)."""
    b = np.asarray(bars, dtype=np.float64)
    o, h, lo, c, v, a = (b[..., i] for i in range(6))
    hi, low = np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))
    width = hi - low
    ok = (v > 0) & (width > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (a / np.where(ok, v, 1.0) - low) / np.where(ok, width, 1.0)
    return np.where(ok, np.clip(pos, 0.0, 1.0), 0.5)


def geometry_features(bars: np.ndarray) -> np.ndarray:
    """(…, T, 6) raw bars → (…, T, 6) gap, body, upper wick, lower wick, log1p volume, VWAP position.

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
        vwap_position(b),
    ], axis=-1)


def bars_from_geometry(f: np.ndarray, anchor_close: np.ndarray) -> np.ndarray:
    """Inverse of `geometry_features`: prices rebuilt from `anchor_close` (the close before bar 0).

    Valid by construction: wicks ≥ 0, volume ≥ 0, VWAP position clamped to [0, 1]."""
    # Bounds far outside any market (e^±50 per bar, e^±300 over a window, volume e^100) only keep
    # absurd decoder outputs finite, so "valid by construction" holds for every input.
    f = np.asarray(f, dtype=np.float64)
    gap, body = np.clip(f[..., 0], -50, 50), np.clip(f[..., 1], -50, 50)
    up, down = np.clip(f[..., 2], 0.0, 50), np.clip(f[..., 3], 0.0, 50)
    log_anchor = np.log(np.asarray(anchor_close, dtype=np.float64))[..., None]
    log_close = log_anchor + np.clip(np.cumsum(gap + body, axis=-1), -300, 300)
    close = np.exp(log_close)
    open_ = np.exp(log_close - body)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high, low = top * np.exp(up), bottom * np.exp(-down)
    volume = np.expm1(np.clip(f[..., 4], 0.0, 100))
    amount = volume * (low + np.clip(f[..., 5], 0.0, 1.0) * (high - low))
    return np.stack([open_, high, low, close, volume, amount], axis=-1)


@dataclass(frozen=True)
class Geometry(_Encode):
    """Returns-and-wicks representation (see module doc).

    `soft` > 0 compresses z-scores as soft·asinh(z / soft) before the ±`clip`: linear near 0,
    logarithmic in the tails, so a 15σ return survives the clip (0 = off: a plain clip; with the
    defaults the largest representable move is 2·sinh(3) ≈ 20σ). `gap_floor` keeps the gap's scale
    at least that share of the std of close-to-close returns: index data whose opens equal the
    previous close for a whole lookback would otherwise scale a later real gap by ≈ 1e-5.
    Defaults chosen from measurements (docs/models.md, "Representations")."""

    clip: float = 6.0
    soft: float = 2.0
    gap_floor: float = 0.25
    center_returns: bool = False  # True: gap/body scaled around 0, not around the context's mean return
    name: str = "geometry"

    @property
    def normalization(self) -> str:
        return ("per window over the lookback: mean/std of gap, body, wicks, log1p volume, VWAP position; "
                f"gap std ≥ {self.gap_floor:g} × close-return std; std + 1e-5; soft {self.soft:g} (asinh); "
                f"clip ±{self.clip:g}" + ("; gap/body scaled around 0 (not the window mean)" if self.center_returns else ""))

    def fit(self, context: np.ndarray) -> ReprStats:
        ctx = np.asarray(context, dtype=np.float64)
        if ctx.ndim < 2 or ctx.shape[-2] == 0 or ctx.shape[-1] != D_IN:
            raise ValueError(f"context must be (..., T, 6) with T >= 1, got shape {ctx.shape}")
        f = geometry_features(ctx)
        # The first bar's gap is a placeholder 0: leave it out of the gap statistics.
        mean, std = f.mean(axis=-2, keepdims=True), f.std(axis=-2, keepdims=True)
        if ctx.shape[-2] > 2:
            mean[..., 0] = f[..., 1:, 0].mean(axis=-1, keepdims=True)
            returns = f[..., 1:, 0] + f[..., 1:, 1]  # close-to-close
            std[..., 0] = np.maximum(f[..., 1:, 0].std(axis=-1, keepdims=True),
                                     self.gap_floor * returns.std(axis=-1, keepdims=True))
        if self.center_returns:
            # Re-adding the context's mean return to every generated bar carries the context's trend on
            # (drift slope ≈ +1 measured); real markets do not. Scale the returns, do not shift them.
            mean[..., :2] = 0.0
        return ReprStats(mean, std, ctx[..., 0, 0], ctx[..., -1, 3])

    def transform(self, bars: np.ndarray, stats: ReprStats) -> np.ndarray:
        z = (geometry_features(bars) - stats.mean) / (stats.std + _EPS)
        if self.soft > 0:
            z = self.soft * np.arcsinh(z / self.soft)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def features(self, z: np.ndarray, stats: ReprStats) -> np.ndarray:
        """Model space → geometry features (float64), undoing the compression."""
        z = np.asarray(z, dtype=np.float64)
        if self.soft > 0:  # decoder outputs beyond the trained range would explode through sinh
            z = self.soft * np.sinh(np.clip(z, -self.clip, self.clip) / self.soft)
        return z * (stats.std + _EPS) + stats.mean

    def inverse(self, z: np.ndarray, stats: ReprStats, *, continue_context: bool = True) -> np.ndarray:
        f = self.features(z, stats)
        if continue_context:
            return bars_from_geometry(f, stats.last_close)
        f[..., 0, 0] = 0.0  # decoding the window itself: bar 0 opens at the window's first open
        return bars_from_geometry(f, stats.first_open)

    def to_dict(self) -> dict:
        d = {"representation": self.name, "clip": self.clip, "soft": self.soft, "gap_floor": self.gap_floor}
        return {**d, "center_returns": True} if self.center_returns else d


REPRESENTATIONS = ("levels", "geometry")


def get_representation(spec: str | dict | Representation | None) -> Representation:
    """By name ('levels', 'geometry'), a sidecar / `to_dict()` dict, or an instance (returned as is);
    None → levels (released checkpoints). Unknown keys of a sidecar are ignored."""
    if spec is None:
        return Levels()
    if not isinstance(spec, str | dict):
        return spec
    if isinstance(spec, str):
        spec = {"representation": spec}
    name = spec.get("representation", "levels")
    try:
        if name == "levels":
            return Levels(clip=float(spec.get("clip", Levels.clip)))
        if name == "geometry":
            return Geometry(clip=float(spec.get("clip", Geometry.clip)), soft=float(spec.get("soft", Geometry.soft)),
                            gap_floor=float(spec.get("gap_floor", Geometry.gap_floor)),
                            center_returns=bool(spec.get("center_returns", False)))
    except (TypeError, ValueError) as e:
        raise InputError(f"representation {spec}: {e}") from e
    raise InputError(f"unknown representation '{name}' — known: {', '.join(REPRESENTATIONS)}")
