"""Input representations: how raw OHLCVA windows become the tokenizer's input space.

A representation is fitted on the lookback part of each window only (no future leak) and
travels with a checkpoint in its `kronos_synth.json` sidecar (never in config.json). The
trainers only ever call `encode`, so a new representation (e.g. `geometry`: returns and wicks)
is one class registered here, with no change to the trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kronos_synth.data.errors import InputError
from kronos_synth.model.normalize import InstanceNorm


class Representation(Protocol):
    """Raw windows (N, T, 6) in FEATURES order → model input (N, T, d_in) float32."""

    name: str
    d_in: int

    def encode(self, values: np.ndarray, lookback: int) -> np.ndarray:
        """Statistics come from `values[:, :lookback]` only; the whole window is transformed."""
        ...


@dataclass(frozen=True)
class Levels:
    """The reference: six z-scored OHLCVA levels per window, clipped to ±5 (InstanceNorm)."""

    name: str = "levels"
    d_in: int = 6
    clip: float = 5.0

    def encode(self, values: np.ndarray, lookback: int) -> np.ndarray:
        values = np.asarray(values)
        if values.ndim != 3 or values.shape[-1] != 6:
            raise ValueError(f"windows must be (N, T, 6), got {values.shape}")
        if not 0 < lookback <= values.shape[1]:
            raise ValueError(f"lookback {lookback} outside the window of {values.shape[1]} bars")
        norm = InstanceNorm(clip=self.clip)
        return norm.transform(values, norm.fit(values[:, :lookback]))


REPRESENTATIONS: dict[str, Representation] = {"levels": Levels()}


def get_representation(name: str) -> Representation:
    """Registered representation by name; unknown names are bad input."""
    if name not in REPRESENTATIONS:
        raise InputError(f"unknown representation '{name}' — known: {', '.join(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]
