"""Real context windows for generation: clean the K-lines, take a split, cut every lookback window, and
continue each symbol's calendar for the bars to generate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.calendar import SessionCalendar
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset
from kronos_synth.data.schema import SYMBOL, TIMESTAMPS
from kronos_synth.data.splits import extract_windows, split_part


@dataclass
class ContextPool:
    """C real lookback windows and the timestamps of the H bars that follow each."""

    values: np.ndarray  # (C, L, 6) raw bars
    timestamps: np.ndarray  # (C, L) datetime64[ns]
    future: np.ndarray  # (C, H) datetime64[ns], continuing each symbol's calendar
    symbols: np.ndarray  # (C,) str
    #: (C,) int64 volatility regime of each context (data/regime.py); None: unknown (bucket 0)
    regime: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])


def build_context_pool(
    klines: pd.DataFrame,
    preset: FrequencyPreset,
    lookback: int,
    horizon: int,
    *,
    split: str = "train",
    test_fraction: float = 0.2,
    contexts_per_symbol: int | None = None,
    source: str = "data",
) -> ContextPool:
    """Clean the K-lines, take the split, cut every lookback window (stride 1) within clean segments."""
    frame = clean_klines(klines, preset.name).frame
    frame = split_part(frame, split, test_fraction=test_fraction, gap=lookback + horizon)
    windows = extract_windows(frame, lookback, stride=1, regime_lookback=lookback)
    if len(windows) == 0:
        longest = int(frame.groupby([SYMBOL, "segment"]).size().max()) if len(frame) else 0
        raise InputError(f"{source}: lookback {lookback} is longer than every clean segment of the {split} "
                         f"split (longest: {longest} bars) — use a smaller lookback or more data", param="lookback")
    if contexts_per_symbol is not None:
        keep = []
        for sym in np.unique(windows.symbols):
            idx = np.flatnonzero(windows.symbols == sym)
            take = np.unique(np.linspace(0, len(idx) - 1, min(contexts_per_symbol, len(idx))).round().astype(int))
            keep.append(idx[take])
        windows = windows.take(np.concatenate(keep))
    future = np.empty((len(windows), horizon), dtype="datetime64[ns]")
    for sym in np.unique(windows.symbols):
        idx = np.flatnonzero(windows.symbols == sym)
        cal = SessionCalendar.fit(klines.loc[klines[SYMBOL].astype(str) == sym, TIMESTAMPS], preset.name)
        future[idx] = cal.next_many(windows.timestamps[idx, -1], horizon)
    return ContextPool(windows.values, windows.timestamps, future, windows.symbols.astype(str), windows.regime)
