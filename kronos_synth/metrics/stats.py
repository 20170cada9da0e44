"""Repeats and confidence intervals, local seeding and thread settings for the metric models."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats as sps


@dataclass
class Estimate:
    """Mean of repeated runs with the half width of its 95 % t-interval (NaN for a single run)."""

    mean: float
    half_width: float
    values: list[float] = field(default_factory=list)
    confidence: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains(self, x: float) -> bool:
        return bool(self.low <= x <= self.high)

    def to_dict(self) -> dict:
        return {"mean": _f(self.mean), "half_width": _f(self.half_width), "low": _f(self.low),
                "high": _f(self.high), "confidence": self.confidence, "values": [_f(v) for v in self.values]}

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.half_width):
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.half_width:.3f}"


def _f(x: float) -> float | None:
    """JSON-friendly float (NaN → None)."""
    x = float(x)
    return None if math.isnan(x) else x


def estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean and Student-t interval half width of independent repeats (NaNs are dropped)."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return Estimate(float("nan"), float("nan"), v.tolist(), confidence)
    mean = float(ok.mean())
    if ok.size < 2:
        return Estimate(mean, float("nan"), v.tolist(), confidence)
    sem = float(ok.std(ddof=1) / math.sqrt(ok.size))
    hw = float(sps.t.ppf(0.5 + confidence / 2, ok.size - 1) * sem)
    return Estimate(mean, hw, v.tolist(), confidence)


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """Independent, reproducible per-repeat seeds derived from one user seed."""
    ss = np.random.SeedSequence(int(seed))
    return [int(s.generate_state(1)[0]) for s in ss.spawn(int(repeats))]


@contextmanager
def seeded_torch(seed: int) -> Iterator[torch.Generator]:
    """Seed torch for model initialisation without leaking into the caller's global RNG state.

    Yields a `torch.Generator` for shuffling; the global CPU RNG is restored on exit.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        yield gen


def default_threads() -> int:
    """Threads for the small metric models: 1 unless KRONOS_SYNTH_THREADS says otherwise.

    Batch-64 RNNs with 32–64 units gain little from a second thread, and on a shared 2-core machine
    OpenMP threads that wait for a busy core made a training step ~20× slower (measured: 41 ms with
    1 thread vs 985 ms with 2 under load). One thread per process is the predictable choice.
    """
    env = os.environ.get("KRONOS_SYNTH_THREADS")
    return max(1, int(env)) if env and env.isdigit() else 1


@contextmanager
def torch_threads(n: int | None = None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (small LSTMs gain nothing from more, and we share CPUs)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(old)
