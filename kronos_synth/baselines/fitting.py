"""Fit a baseline on the train period of a K-line source and save it (what `baseline fit` runs).

load (file or embedded dataset, resampled to `freq`) → clean → chronological split with a gap of
one preset window → all train windows (stride 1) → fit → save. Next to the model the folder gets
`training.json` (source, freq, window, split) and `train_calendar.parquet` (symbol, timestamps,
close of the train bars and the window ends), so `baseline sample` can continue real calendars
without re-reading the data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_synth.baselines import get_baseline
from kronos_synth.baselines.base import BaselineError, FitReport

TRAINING = "training.json"
CALENDAR = "train_calendar.parquet"


@dataclass
class TrainingData:
    windows: Any  # kronos_synth.data.splits.Windows of the train period
    train: pd.DataFrame
    source: str
    freq: str
    window: int
    test_fraction: float
    gap: int


def training_windows(data: str | None, freq: str, window: int | None = None, *,
                     test_fraction: float = 0.2) -> TrainingData:
    """Train-period windows (stride 1) of `data` at `freq`; window defaults to the preset horizon."""
    from kronos_synth.data.cleaning import clean_klines
    from kronos_synth.data.frequency import get_preset
    from kronos_synth.data.sources import klines_for
    from kronos_synth.data.splits import extract_windows, split_by_time

    preset = get_preset(freq)
    length = preset.horizon if window is None else int(window)
    if length < 2:
        raise BaselineError(f"window must be at least 2 bars, got {length}", param="window")
    frame, source = klines_for(preset.name, data)
    cleaned = clean_klines(frame, preset).frame
    gap = max(preset.window, length)
    train, _ = split_by_time(cleaned, test_fraction=test_fraction, gap=gap)
    wins = extract_windows(train, length, stride=1)
    if len(wins) < 2:
        raise BaselineError(f"{source}: only {len(wins)} train windows of {length} bars after cleaning and "
                            "the train/test split — use a longer history or a shorter window", param="window")
    return TrainingData(wins, train, source, preset.name, length, test_fraction, gap)


@dataclass
class FitResult:
    path: str
    report: FitReport
    source: str
    freq: str
    window: int


def check_out_folder(out: str | os.PathLike) -> None:
    """`out` may be new, empty or an earlier baseline folder (refit) — never a file, a synthetic dataset or a
    Kronos checkpoint, whose files a baseline would overwrite or sit among."""
    from kronos_synth.data.synthetic import MANIFEST

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BaselineError(f"{out}: exists and is not a folder — pass a folder path as out", param="out")
    if not out.is_dir():
        return
    if (out / MANIFEST).exists() or any(out.glob("part-*.parquet")):
        raise BaselineError(f"{out}: is a synthetic dataset folder ({MANIFEST} / part files) — a baseline model "
                            "goes to a folder of its own; pass a new out folder", param="out")
    if (out / "kronos_synth.json").exists():
        raise BaselineError(f"{out}: holds a Kronos checkpoint — pass a new out folder for the baseline", param="out")


def fit_baseline(name: str, data: str | None, freq: str, out: str | os.PathLike, *, seed: int = 0,
                 steps: int | None = None, window: int | None = None, options: dict[str, Any] | None = None,
                 progress: bool = False) -> FitResult:
    """Fit baseline `name` on the train windows of `data` and save it to `out`."""
    options = dict(options or {})
    if steps is not None:
        if steps <= 0:
            raise BaselineError(f"steps must be positive, got {steps}", param="steps")
        from kronos_synth.baselines import baseline_class

        if "steps" not in baseline_class(name).Options.names():
            raise BaselineError(f"{name} takes no steps (it has no training loop)", param="steps")
        options["steps"] = int(steps)
    model = get_baseline(name, **options)  # fails fast on a bad name or option
    check_out_folder(out)
    td = training_windows(data, freq, window)
    report = model.fit(td.windows.values, seed=seed, progress=progress)  # warns on collapse
    out = Path(out)
    model.save(out)
    (out / TRAINING).write_text(json.dumps({
        "source": td.source, "freq": td.freq, "window": td.window, "test_fraction": td.test_fraction,
        "gap": td.gap, "n_windows": len(td.windows), "train_rows": len(td.train),
        "train_first": str(td.train["timestamps"].min()), "train_last": str(td.train["timestamps"].max()),
    }, indent=2))
    ends = pd.DataFrame({"symbol": td.windows.symbols.astype(str),
                         "timestamps": td.windows.timestamps[:, -1],
                         "close": td.windows.values[:, -1, 3], "kind": "window_end"})
    bars = pd.DataFrame({"symbol": td.train["symbol"].astype(str).to_numpy(),
                         "timestamps": td.train["timestamps"].to_numpy(dtype="datetime64[ns]"),
                         "close": td.train["close"].to_numpy(dtype=np.float64), "kind": "bar"})
    pd.concat([bars, ends], ignore_index=True).to_parquet(out / CALENDAR, index=False)
    return FitResult(str(out), report, td.source, td.freq, td.window)
