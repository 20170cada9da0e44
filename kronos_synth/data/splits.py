"""Chronological train/test splits and fixed-length windows that never cross a symbol or segment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.errors import InputError, KlineDataError
from kronos_synth.data.regime import regime_ids
from kronos_synth.data.schema import FEATURES, SEGMENT, SYMBOL, TIMESTAMPS


def _block_bounds(df: pd.DataFrame, by_segment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) row positions of each symbol (and segment) block of a sorted frame."""
    n = len(df)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    new = np.ones(n, dtype=bool)
    sym = df[SYMBOL].to_numpy()
    new[1:] = sym[1:] != sym[:-1]
    if by_segment and SEGMENT in df.columns:
        seg = df[SEGMENT].to_numpy()
        new[1:] |= seg[1:] != seg[:-1]
    starts = np.flatnonzero(new)
    stops = np.append(starts[1:], n)
    return starts, stops


def split_by_time(
    df: pd.DataFrame, *, test_fraction: float = 0.2, gap: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per symbol: test = the last `test_fraction` of its rows, train = the rows before, minus a gap.

    The `gap` rows just before the test period (use one window length) belong to neither part, so
    no train window can touch the test period. Rows are counted per symbol across segments.
    Both parts keep the input columns and get a fresh RangeIndex.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if gap < 0:
        raise InputError(f"gap must be >= 0 bars, got {gap}")
    train_rows, test_rows = [], []
    for start, stop in zip(*_block_bounds(df, by_segment=False), strict=True):
        n = stop - start
        cut = start + n - int(round(n * test_fraction))
        train_rows.append(np.arange(start, max(start, cut - gap)))
        test_rows.append(np.arange(cut, stop))
    train_idx = np.concatenate(train_rows) if train_rows else np.zeros(0, dtype=np.int64)
    test_idx = np.concatenate(test_rows) if test_rows else np.zeros(0, dtype=np.int64)
    if len(df) and (train_idx.size == 0 or test_idx.size == 0):
        raise KlineDataError(
            f"too few rows to split: {len(df)} rows with test_fraction {test_fraction} and a gap of {gap}",
            hint="use a longer history or a shorter window",
        )
    return (
        df.iloc[train_idx].reset_index(drop=True),
        df.iloc[test_idx].reset_index(drop=True),
    )


@dataclass
class Windows:
    """N windows of L bars: values in FEATURES order, each window inside one symbol and segment."""

    values: np.ndarray  # (N, L, 6) float64
    timestamps: np.ndarray  # (N, L) datetime64[ns]
    symbols: np.ndarray  # (N,) str
    starts: np.ndarray  # (N,) int64, row position of the first bar in the source frame
    regime: np.ndarray | None = None  # (N,) int64 volatility regime of each window's context (data/regime.py)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def length(self) -> int:
        return int(self.values.shape[1])

    def spans(self, first: int = 0) -> np.ndarray:
        """(N, 2) int64 ns: time of bar `first` (e.g. the lookback, for the horizon alone) and of the last bar
        of each window."""
        return self.timestamps[:, [first, -1]].astype("int64").reshape(-1, 2)

    def take(self, index: np.ndarray) -> Windows:
        """A subset of windows (e.g. a seeded sample)."""
        index = np.asarray(index)
        return Windows(self.values[index], self.timestamps[index], self.symbols[index], self.starts[index],
                       None if self.regime is None else self.regime[index])


#: which real period a synthetic set is scored against: the test period, or the validation period (the train
#: period's last test_fraction; the test period is not read)
PERIODS = ("test", "validation")


def split_part(df: pd.DataFrame, split: str, *, test_fraction: float = 0.2, gap: int) -> pd.DataFrame:
    """The rows of one split: "train", "test", "all", or "train-head" — the train part split once more the
    same way, before its tail (the validation period of `--validation train-tail` and
    `evaluate --period validation`): contexts from there never see the validation or test periods."""
    if split == "all":
        return df
    train, test = split_by_time(df, test_fraction=test_fraction, gap=gap)
    if split == "train-head":
        return split_by_time(train, test_fraction=test_fraction, gap=gap)[0]
    return train if split == "train" else test


def block_first(df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """First row of the symbol (and segment) block holding each of `rows` (row positions of `df`)."""
    first, _ = _block_bounds(df)
    rows = np.asarray(rows, dtype=np.int64)
    return first[np.searchsorted(first, rows, side="right") - 1] if rows.size else rows.copy()


def window_starts(df: pd.DataFrame, length: int, stride: int = 1) -> np.ndarray:
    """First rows of all windows of `length` consecutive rows, every `stride` rows, that never cross a symbol
    or (if the column exists) a `segment`."""
    if length < 1 or stride < 1:
        raise InputError(f"window length and stride must be >= 1 (got {length}, {stride})")
    out = [np.arange(a, b - length + 1, stride) for a, b in zip(*_block_bounds(df), strict=True) if b - a >= length]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def extract_windows(df: pd.DataFrame, length: int, stride: int = 1, *, regime_lookback: int | None = None) -> Windows:
    """All windows of `length` consecutive rows, every `stride` rows, never crossing a symbol or
    (if the column exists) a `segment`. Blocks shorter than `length` give no window. `regime_lookback`:
    also the volatility regime of each window's first `regime_lookback` bars, from the rows before them."""
    starts = window_starts(df, length, stride)
    regime = None
    if regime_lookback is not None:
        regime = regime_ids(df[FEATURES[3]].to_numpy(dtype=np.float64), starts, block_first(df, starts), regime_lookback)
    idx = starts[:, None] + np.arange(length)[None, :]
    feats = df[list(FEATURES)].to_numpy(dtype=np.float64)
    ts = df[TIMESTAMPS].to_numpy(dtype="datetime64[ns]")
    sym = df[SYMBOL].astype(str).to_numpy().astype(str)
    return Windows(
        values=feats[idx] if starts.size else np.zeros((0, length, len(FEATURES))),
        timestamps=ts[idx] if starts.size else np.zeros((0, length), dtype="datetime64[ns]"),
        symbols=sym[starts] if starts.size else np.zeros(0, dtype=str),
        starts=starts,
        regime=regime,
    )
