"""docs/protocol.md §6: does the generator copy its training windows? Nearest-neighbour distances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors


@dataclass
class MemorizationResult:
    n_synthetic: int
    n_train: int
    n_test: int
    #: 1st percentile of real test → train nearest-neighbour distances
    real_p1: float
    real_median: float
    synthetic_median: float
    #: share of synthetic sequences closer to a train window than real_p1 (≈ 0.01 when not copying)
    share_below_real_p1: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x.reshape(len(x), -1)


def memorization(synthetic: np.ndarray, train: np.ndarray, test: np.ndarray, *, max_train: int = 20000,
                 seed: int = 0) -> MemorizationResult:
    """Distance (Euclidean, normalized feature space) from each synthetic sequence to its nearest train
    window, against the same distance for real test windows. Train windows are subsampled (seeded) to
    `max_train` to bound the cost; stride-1 neighbours are near-duplicates, so little is lost."""
    tr = _flat(train)
    if len(tr) > max_train:
        tr = tr[np.sort(np.random.default_rng(seed).choice(len(tr), max_train, replace=False))]
    nn = NearestNeighbors(n_neighbors=1).fit(tr)
    d_syn = nn.kneighbors(_flat(synthetic))[0][:, 0]
    d_real = nn.kneighbors(_flat(test))[0][:, 0]
    p1 = float(np.percentile(d_real, 1))
    return MemorizationResult(len(d_syn), len(tr), len(d_real), p1, float(np.median(d_real)),
                              float(np.median(d_syn)), float((d_syn < p1).mean()))
