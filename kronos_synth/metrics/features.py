"""docs/protocol.md §2: per-sequence normalization of OHLCVA bars into the post-hoc models' input features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kronos_synth.data.schema import FEATURES

PRICE_IDX = [0, 1, 2, 3]
VOLUME_IDX = [4, 5]
EPS = 1e-8


def is_volume_free(bars: np.ndarray) -> bool:
    """True when every volume is 0 (FX, or crypto without volume): volume/amount carry nothing."""
    return bool(np.all(np.asarray(bars)[..., 4] == 0))


def normalize_sequences(bars: np.ndarray, *, include_volume: bool = True, clip: float = 5.0,
                        stats_steps: int | None = None) -> np.ndarray:
    """(n, T, 6) raw bars → (n, T, F) features, F = 6 or 4 without volume.

    The four prices share one mean/std per sequence so bar geometry (high ≥ close, …) survives;
    log1p(volume) and log1p(amount) are z-scored on their own; everything is clipped to ±clip.
    `stats_steps` computes the statistics on the first steps only (TSTR: the lookback part), so the
    targets are expressed in the context's scale without peeking at them.
    """
    x = np.asarray(bars, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != len(FEATURES):
        raise ValueError(f"expected bars of shape (n, T, {len(FEATURES)}), got {x.shape}")
    s = slice(None) if stats_steps is None else slice(0, stats_steps)
    prices = x[..., PRICE_IDX]
    ref = prices[:, s]
    mean = ref.mean(axis=(1, 2), keepdims=True)
    std = ref.std(axis=(1, 2), keepdims=True)
    out = [(prices - mean) / np.maximum(std, EPS)]
    if include_volume:
        # Invalid negative volume (a generator bug that validity reports) must not create NaNs here.
        vol = np.log1p(np.maximum(x[..., VOLUME_IDX], 0.0))
        vref = vol[:, s]
        vmean = vref.mean(axis=1, keepdims=True)
        vstd = vref.std(axis=1, keepdims=True)
        out.append((vol - vmean) / np.maximum(vstd, EPS))
    return np.clip(np.concatenate(out, axis=-1), -clip, clip)


@dataclass
class FeatureSet:
    """Normalized real and synthetic sequences ready for the post-hoc models."""

    real: np.ndarray
    synthetic: np.ndarray
    features: tuple[str, ...]
    #: volume/amount were dropped for both sets because one of them carries no volume
    volume_free: bool
    clip: float

    def to_dict(self) -> dict:
        return {"features": list(self.features), "volume_free": self.volume_free, "clip": self.clip,
                "n_real": int(len(self.real)), "n_synthetic": int(len(self.synthetic)),
                "length": int(self.real.shape[1])}


def prepare_features(real: np.ndarray, synthetic: np.ndarray, *, clip: float = 5.0,
                     volume_free: bool | None = None) -> FeatureSet:
    """Normalize both sets with the §2 rules; volume-free data drops volume/amount for both.

    `volume_free=None` decides from the data (either set all-zero volume); pass a bool to keep the
    calibration rows on the same features as the main comparison.
    """
    if volume_free is None:
        volume_free = is_volume_free(real) or is_volume_free(synthetic)
    feats = FEATURES[:4] if volume_free else FEATURES
    r = normalize_sequences(real, include_volume=not volume_free, clip=clip)
    s = normalize_sequences(synthetic, include_volume=not volume_free, clip=clip)
    return FeatureSet(r, s, tuple(feats), volume_free, clip)


def shuffle_bars(bars: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute each sequence's bars in time (whole bars move): the `shuffled bars` calibration row."""
    x = np.asarray(bars)
    order = np.argsort(rng.random(x.shape[:2]), axis=1)
    return np.take_along_axis(x, order[..., None], axis=1)
