"""Picking the K-lines a command works on: a file, an embedded dataset, or the default for a frequency,
aggregated to the requested bar size when the source is finer.

`load_klines` dispatches between files (`readers`) and embedded datasets (`datasets`); it lives here,
above both, so that `datasets` can use the readers without the readers importing it back.
"""

from __future__ import annotations

import os

import pandas as pd

from kronos_synth.data.datasets import dataset_names, default_dataset_for, list_datasets, load_dataset
from kronos_synth.data.errors import InputError, KlineDataError
from kronos_synth.data.frequency import get_preset, infer_frequency
from kronos_synth.data.readers import read_klines
from kronos_synth.data.resample import resample_klines


def load_klines(source: str, *, strict: bool = False) -> pd.DataFrame:
    """A file path (or glob) or an embedded dataset name (see `list_datasets`) → K-line frame."""
    names = dataset_names()
    if source in names:
        return load_dataset(source)
    if os.path.exists(source) or any(ch in source for ch in "*?["):
        return read_klines(source, strict=strict)
    raise KlineDataError(
        "no such file and no embedded dataset of that name",
        file=source,
        hint=f"embedded datasets: {', '.join(names)}",
    )


def _load(freq: str, data: str | None, strict: bool):
    """(frame as read, its frequency preset, the target preset, the data string)."""
    preset = get_preset(freq)
    if data is None:
        data = default_dataset_for(preset.name)
        if data is None:
            have = ", ".join(f"{d.name} ({d.frequency})" for d in list_datasets())
            raise InputError(
                f"no embedded dataset has {preset.name} bars (embedded: {have}) — pass your own as "
                f"data=FILE.csv (columns timestamps, open, high, low, close[, volume, amount])", param="data")
    frame = load_klines(data, strict=strict)
    source = infer_frequency(frame, target=preset.name, label=data)
    if source.timedelta > preset.timedelta:
        raise InputError(
            f"{data}: has {source.name} bars, coarser than freq={preset.name!r} — pass finer data or "
            f"freq={source.name!r}", param="freq")
    return frame, source, preset, data


def klines_for(freq: str, data: str | None = None, *, strict: bool = False) -> tuple[pd.DataFrame, str]:
    """K-lines at `freq` from `data` (file path or embedded dataset name), or from the embedded
    dataset of that frequency when `data` is None. Returns the frame and a label naming the source."""
    frame, source, preset, data = _load(freq, data, strict)
    if source.timedelta < preset.timedelta:
        frame = resample_klines(frame, preset)
        data = f"{data} (resampled {source.name} → {preset.name})"
    return frame, data


def phase_klines_for(freq: str, data: str, *, strict: bool = False) -> tuple[dict[pd.Timedelta, pd.DataFrame], str]:
    """`klines_for` at every phase: when `data` has bars finer than an intraday `freq`, one frame per
    bin origin offset k·step (k = 0 .. freq/step − 1), e.g. 5-minute bars → 15-minute bars starting at
    :00, :05 and :10. Offset 0 is exactly `klines_for`'s frame; a source that is not finer (or a daily
    or weekly `freq`) gives that frame alone. Returns the frames by offset and the source label."""
    frame, source, preset, data = _load(freq, data, strict)
    if source.timedelta == preset.timedelta:
        return {pd.Timedelta(0): frame}, data
    if preset.timedelta >= pd.Timedelta("1D"):
        return {pd.Timedelta(0): resample_klines(frame, preset)}, f"{data} (resampled {source.name} → {preset.name})"
    offsets = pd.timedelta_range(pd.Timedelta(0), preset.timedelta - pd.Timedelta(1), freq=source.timedelta)
    frames = {pd.Timedelta(off): resample_klines(frame, preset, offset=off) for off in offsets}
    label = f"{data} (resampled {source.name} → {preset.name} at {len(frames)} phase offsets)"
    return frames, label
