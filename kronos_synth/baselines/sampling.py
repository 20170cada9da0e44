"""Sample a saved baseline into a schema-v1 synthetic dataset (what `baseline sample` runs).

Baselines are unconditional, but every sequence is placed in a real setting: a training window
is drawn (seeded) per sequence, the sequence starts at that window's last close and its
timestamps continue that window's calendar (learned per symbol from the train bars by the data
layer). `symbol` names that window's asset; `context_end` stays null (nothing conditioned the
model). Parts are sampled and written one by one through `ParquetSequenceWriter`, each from a
seed derived from (seed, part index), so big n streams, an interrupted run resumes, and the
bytes do not depend on which parts were already there.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_synth.baselines.base import CONFIG, Baseline, BaselineError
from kronos_synth.baselines.fitting import CALENDAR, TRAINING

NORMALIZATION = ("scale-free v2: log(OHLC / window's first close), log1p(volume), log(amount / (volume * close)); "
                 "anchored at a real training close")


@dataclass
class SampleResult:
    path: str
    n: int
    parts_written: int
    parts_total: int
    wall_time_s: float


def _folder_sha256(path: Path) -> str:
    """Hash of the fitted state (every file except the JSON reports)."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix != ".json":
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _part_seed(seed: int, part: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(part)]).generate_state(1)[0])


def sample_to_dataset(model_dir: str | os.PathLike, n: int, out: str | os.PathLike, *, seed: int = 0,
                      sequences_per_part: int = 1000, progress: bool = False) -> SampleResult:
    """Write n sequences of the baseline saved in `model_dir` as a schema-v1 dataset in `out`."""
    from kronos_synth.data.calendar import SessionCalendar
    from kronos_synth.data.synthetic import ParquetSequenceWriter, sequences_to_frame

    model_dir = Path(model_dir)
    model = Baseline.load(model_dir)
    for name in (TRAINING, CALENDAR):
        if not (model_dir / name).is_file():
            raise BaselineError(f"{model_dir}: no {name} — sample a folder written by `kronos-synth baseline fit`")
    try:
        training = json.loads((model_dir / TRAINING).read_text())
        freq = training["freq"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
        raise BaselineError(f"{model_dir / TRAINING}: unreadable or without freq ({e}) — refit with "
                            "`kronos-synth baseline fit`") from None
    try:
        cal = pd.read_parquet(model_dir / CALENDAR)
        bars, ends = cal[cal["kind"] == "bar"], cal[cal["kind"] == "window_end"].reset_index(drop=True)
    except Exception as e:  # not Parquet (pyarrow's own errors), or not the calendar's columns
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BaselineError(f"{model_dir / CALENDAR}: unreadable ({first}) — refit with "
                            "`kronos-synth baseline fit`") from None
    calendars = {sym: SessionCalendar.fit(g["timestamps"], freq) for sym, g in bars.groupby("symbol", sort=True)}
    config = json.loads((model_dir / CONFIG).read_text())
    metadata = {
        "generator": model.name,
        "baseline_options": model.options,
        "model": str(model_dir.resolve()),
        "model_sha256": _folder_sha256(model_dir),
        "fit_seed": config.get("seed"),
        "seed": int(seed),
        "freq": freq,
        "lookback": 0,
        "horizon": model.window,
        "normalization": NORMALIZATION,
        "conditioning": "none; start price and calendar from a random train window",
        "source": training.get("source"),
        "temperature": None, "top_p": None, "top_k": None, "clip": None, "tokenizer": None,
    }
    writer = ParquetSequenceWriter(out, n=int(n), sequences_per_part=int(sequences_per_part), metadata=metadata)
    pending = writer.pending_parts()
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    end_sym = ends["symbol"].to_numpy().astype(str)
    end_ts = ends["timestamps"].to_numpy(dtype="datetime64[ns]")
    end_close = ends["close"].to_numpy(dtype=np.float64)
    for k in tqdm(pending, disable=not progress, desc=f"{model.name} sample", unit="part", leave=False):
        start, stop = writer.part_range(k)
        m = stop - start
        ps = _part_seed(seed, k)
        pick = np.random.default_rng([ps, 2]).integers(0, len(ends), size=m)
        values = model.sample(m, seed=ps, anchors=end_close[pick])
        ts = np.empty((m, model.window), dtype="datetime64[ns]")
        for sym in np.unique(end_sym[pick]):
            sel = np.nonzero(end_sym[pick] == sym)[0]
            ts[sel] = calendars[sym].next_many(end_ts[pick[sel]], model.window)
        frame = sequences_to_frame(values, ts, np.arange(start, stop), end_sym[pick])
        writer.write_part(k, frame)
    return SampleResult(str(out), int(n), len(pending), writer.n_parts, round(time.perf_counter() - t0, 3))
