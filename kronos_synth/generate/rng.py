"""Counter-based random numbers: the draw for (seed, sequence, step, stream) depends on nothing else.

This is what makes generation reproducible whatever the batch size, the order of batches or the
number of workers: sequence 1234 gets the same uniforms whether it is sampled alone, in a batch of
1024, or on another machine. SplitMix64 finalizers over a 4-word counter (Steele et al., 2014).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def counter_uniform(seed: int, sequence_ids: np.ndarray, step: int, stream: int) -> np.ndarray:
    """Uniform draws in [0, 1), float64, one per sequence id."""
    with np.errstate(over="ignore"):
        ids = np.asarray(sequence_ids, dtype=np.uint64)
        key = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + _GOLDEN)
        x = _mix(key ^ (ids * _GOLDEN + _GOLDEN))
        x = _mix(x ^ (np.uint64(step) * _M1 + _GOLDEN))
        x = _mix(x ^ (np.uint64(stream) * _M2 + _GOLDEN))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def counter_permutation(seed: int, n: int, stream: int) -> np.ndarray:
    """A permutation of range(n) determined by (seed, stream) only."""
    keys = counter_uniform(seed, np.arange(n), step=0xFFFF, stream=stream)
    return np.argsort(keys, kind="stable")
