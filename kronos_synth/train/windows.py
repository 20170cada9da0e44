"""Training data: K-line sources → cleaned, time-split, windowed and normalised batches.

Every source (file, glob or embedded dataset name) is loaded at `freq` (finer data is resampled,
coarser data is an error), cleaned, and split per symbol by time exactly as `generate` splits
it (last `test_fraction` of each symbol's rows is the test period, a gap of one window before
it belongs to neither part). Train windows are every window of lookback + horizon + 1 bars in
the train period; validation windows come from the test period. Windows are gathered and
normalised per batch (on their lookback part only), so memory stays at one copy of the bars.

`validation="train-tail"`: the test period is never read; the train period is split once more the same
way and validation windows come from its tail (as `calibration_windows(period="validation")`). Use it
when the test period is what `evaluate` will score: choosing checkpoints on it would leak the test set.

`phase_offsets`: a source with bars finer than an intraday `freq` is resampled once per bin origin
offset (5-minute bars → 15-minute bars at :00, :05 and :10), each offset a sequence of its own for
windowing. Offset 0 is split as above; every other offset keeps only its bars that end by the end of
offset 0's train period (so its train windows are built from the same source bars), and validation
uses offset 0 only, so validation losses are comparable with and without the option.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset
from kronos_synth.data.hashing import sha256_file  # noqa: F401 (re-exported)
from kronos_synth.data.regime import regime_ids, with_regime
from kronos_synth.data.schema import FEATURES, SYMBOL, TIMESTAMPS
from kronos_synth.data.sources import klines_for, phase_klines_for
from kronos_synth.data.splits import block_first, split_by_time, window_starts
from kronos_synth.model.normalize import time_features
from kronos_synth.model.representation import Representation, get_representation


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one pass over `n_train` windows (at least 1)."""
    return max(1, n_train // batch_size)


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
    """Train windows of global step `step` (pure function of its arguments)."""
    spe = steps_per_epoch(n, batch_size)
    epoch, k = divmod(step, spe)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[k * batch_size:(k + 1) * batch_size]


@dataclass
class WindowSet:
    """N windows of `length` bars over concatenated rows; `batch` normalises on demand."""

    rows: np.ndarray  # (R, 6) float64 raw bars
    stamps: np.ndarray  # (R, 5) float32 time features of the rows
    starts: np.ndarray  # (N,) int64 first row of each window
    length: int
    lookback: int
    representation: Representation
    #: (N,) first row of each window's clean segment: the history its volatility regime may use
    #: (data/regime.py); None: no regime column
    first: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def keep(self, index: np.ndarray) -> None:
        """Keep only windows `index` (validation caps)."""
        self.starts = self.starts[index]
        if self.first is not None:
            self.first = self.first[index]

    def _stamps(self, index: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        if self.first is None:
            return stamps
        ids = regime_ids(self.rows[:, 3], self.starts[index], self.first[index], self.lookback)
        return with_regime(stamps, ids)

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows `index` → (x (B, T, d_in) float32, stamps (B, T, 5 or 6) float32; the sixth column is the
        regime id)."""
        index = np.asarray(index)
        idx = self.starts[index][:, None] + np.arange(self.length)[None, :]
        return self.representation.encode(self.rows[idx], self.lookback), self._stamps(index, self.stamps[idx])

    def groups(self) -> Iterator[WindowSet]:
        """Sets of windows of one length (a mixture of bar sizes has several; this has one)."""
        yield self

    def draw(self, seed: int, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The train batch of global step `step`: epoch-wise seeded permutations (pure in its arguments)."""
        return self.batch(batch_indices(seed, step, len(self), batch_size))


@dataclass
class SourceRecord:
    """What one `data` source contributed (written to training.json)."""

    data: str
    label: str
    files: dict[str, str]  # path → sha256
    symbols: list[dict] = field(default_factory=list)  # per symbol: rows and split dates
    phases: list[dict] = field(default_factory=list)  # with phase_offsets: per offset its train rows and windows

    def to_dict(self) -> dict:
        out = {"data": self.data, "label": self.label, "files": self.files, "symbols": self.symbols}
        if self.phases:  # absent without the option: earlier runs' fingerprints stay valid
            out["phase_offsets"] = self.phases
        return out


#: where validation windows come from (`prepare_training_data`)
VALIDATION_PERIODS = ("held-out", "train-tail")


@dataclass
class TrainingData:
    train: WindowSet
    val: WindowSet
    sources: list[SourceRecord]
    freq: str
    lookback: int
    horizon: int
    test_fraction: float
    representation: str
    phase_offsets: bool = False
    validation: str = "held-out"

    @property
    def window(self) -> int:
        """Bars per training window: lookback + horizon + 1 (inputs [:-1], targets [1:])."""
        return self.lookback + self.horizon + 1

    def check_prepared_for(self, cfg) -> None:
        """Data prepared beforehand must match what the training config asks for (`validation`, `phase_offsets`)."""
        if self.validation != cfg.validation:
            raise InputError(f"validation: the training data was prepared with validation={self.validation!r}, "
                             f"the config asks for {cfg.validation!r}", param="validation")
        if cfg.phase_offsets and not self.phase_offsets:
            raise InputError("phase_offsets: the training data was prepared without them — pass "
                             "prepare_training_data(..., phase_offsets=True)")

    def sidecar_window(self) -> dict:
        """What a checkpoint's kronos_synth.json records of the data's bar size and window."""
        return {"freq": self.freq, "lookback": self.lookback, "horizon": self.horizon}

    def describe(self) -> dict:
        out = {"freq": self.freq, "lookback": self.lookback, "horizon": self.horizon, "window": self.window,
               "test_fraction": self.test_fraction, "representation": self.representation,
               "representation_config": self.train.representation.to_dict(),
               "train_windows": len(self.train), "val_windows": len(self.val),
               "sources": [s.to_dict() for s in self.sources]}
        if self.validation != "held-out":
            out["validation"] = self.validation
        if self.phase_offsets:
            out["phase_offsets"] = True
        return out




def _source_files(data: str) -> dict[str, str]:
    """The files behind one `data` source with their sha256 (embedded datasets: the package file)."""
    from kronos_synth.data.datasets import dataset_names, dataset_path

    if data in dataset_names():
        paths = [dataset_path(data)]
    elif os.path.exists(data):
        paths = [data] if os.path.isfile(data) else sorted(glob.glob(os.path.join(data, "*")))
    else:
        paths = sorted(glob.glob(data))
    return {os.path.abspath(p): sha256_file(p) for p in paths if os.path.isfile(p)}



def _minutes(offset: pd.Timedelta) -> str:
    return f"{int(offset / pd.Timedelta('1min'))}min"


def _train_part_of_phase(frame: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The bars of another phase that end by the end of offset 0's train period, per symbol.

    Offset 0's last train bar starts at L and its bars are as long as this phase's, so a bar starting at
    or before L ends by then too: its source bars all lie in offset 0's train period, before the gap."""
    last = train.groupby(train[SYMBOL].astype(str), sort=False)[TIMESTAMPS].max()
    limit = frame[SYMBOL].astype(str).map(last)  # NaT for symbols without offset-0 train bars
    keep = (frame[TIMESTAMPS] <= limit).to_numpy(dtype=bool)
    return frame.loc[keep].reset_index(drop=True)


def _period(frame: pd.DataFrame, sym: str) -> tuple[str | None, str | None, int]:
    part = frame.loc[frame[SYMBOL].astype(str) == sym, TIMESTAMPS]
    if part.empty:
        return None, None, 0
    return str(part.iloc[0]), str(part.iloc[-1]), int(len(part))


def prepare_training_data(
    data: Sequence[str],
    *,
    freq: str,
    lookback: int | None = None,
    horizon: int | None = None,
    test_fraction: float = 0.2,
    representation: str | dict | Representation = "levels",
    train_stride: int = 1,
    max_val_windows: int = 512,
    phase_offsets: bool = False,
    validation: str = "held-out",
    log: Callable[[str], None] = lambda line: None,
) -> TrainingData:
    """Load, clean and time-split every source; index train and validation windows.

    `representation`: a name, a sidecar / `to_dict()` dict or a `Representation`. `phase_offsets`:
    sources finer than an intraday `freq` add train windows at every bin origin offset (module doc).
    `validation`: "held-out" (the test period validates) or "train-tail" (the test period is left out and
    the train period's own tail validates; module doc)."""
    if validation not in VALIDATION_PERIODS:
        raise InputError(f"validation must be one of {', '.join(VALIDATION_PERIODS)}, got {validation!r}",
                         param="validation")
    if not data:
        raise InputError("no training data: give data, one or more files, globs or embedded dataset names",
                         param="data")
    preset = get_preset(freq)
    lookback = int(preset.lookback if lookback is None else lookback)  # 0 is refused below, not the default
    horizon = int(preset.horizon if horizon is None else horizon)
    if lookback < 1 or horizon < 1:
        raise InputError(f"lookback and horizon must be positive, got {lookback}, {horizon}",
                         param=("lookback", "horizon"))
    length = lookback + horizon + 1
    rep = get_representation(representation)
    parts: dict[str, list] = {"train": [], "val": []}
    offsets = {"train": 0, "val": 0}
    records = []
    not_finer = []
    for src in data:
        if phase_offsets:
            frames, label = phase_klines_for(preset.name, src)
        else:
            frame, label = klines_for(preset.name, src)
            frames = {pd.Timedelta(0): frame}
        clean = clean_klines(frames.pop(pd.Timedelta(0)), preset.name, min_segment_bars=length).frame
        try:
            train, test = split_by_time(clean, test_fraction=test_fraction, gap=lookback + horizon)
            if validation == "train-tail":  # the test period stays unread; validate on the train period's tail
                train, test = split_by_time(train, test_fraction=test_fraction, gap=lookback + horizon)
        except InputError as e:
            raise InputError(f"{src}: {e}") from e
        record = SourceRecord(src, label, _source_files(src))
        for sym in pd.unique(clean[SYMBOL].astype(str)):
            tr0, tr1, ntr = _period(train, sym)
            te0, te1, nte = _period(test, sym)
            held = "test" if validation == "held-out" else "val"  # train-tail: the validating part is no test
            record.symbols.append({"symbol": sym, "train_first": tr0, "train_last": tr1, "train_rows": ntr,
                                   f"{held}_first": te0, f"{held}_last": te1, f"{held}_rows": nte})
        # each phase is a sequence of its own: windows are indexed per part and never cross parts
        phase_parts = [("train", train, train_stride, pd.Timedelta(0)), ("val", test, 1, None)]
        for off, frame in frames.items():
            phase = clean_klines(frame, preset.name, min_segment_bars=length).frame
            phase_parts.append(("train", _train_part_of_phase(phase, train), train_stride, off))
        for name, part, stride, off in phase_parts:
            starts = window_starts(part, length, stride)
            rows = part[list(FEATURES)].to_numpy(dtype=np.float64)
            stamps = time_features(part[TIMESTAMPS])
            parts[name].append((rows, stamps, starts + offsets[name], block_first(part, starts) + offsets[name]))
            offsets[name] += len(rows)
            if phase_offsets and off is not None:
                record.phases.append({"offset": _minutes(off), "train_rows": int(len(part)),
                                      "train_windows": int(len(starts))})
        if phase_offsets:
            if frames:
                log(f"{src}: phase offsets {', '.join(p['offset'] for p in record.phases)} → train windows "
                    f"{' + '.join(str(p['train_windows']) for p in record.phases)}")
            else:
                not_finer.append(src)
        records.append(record)
    if not_finer:  # the option does nothing here: say so once
        why = (f"{preset.name} is not an intraday frequency" if preset.timedelta >= pd.Timedelta("1D")
               else f"no bars finer than {preset.name} in {', '.join(not_finer)}")
        log(f"phase offsets: {why} — one series per source (offset 0)")

    def join(name: str) -> WindowSet:
        rows = np.concatenate([p[0] for p in parts[name]])
        stamps = np.concatenate([p[1] for p in parts[name]])
        starts = np.concatenate([p[2] for p in parts[name]])
        return WindowSet(rows, stamps, starts, length, lookback, rep, first=np.concatenate([p[3] for p in parts[name]]))

    train_set, val_set = join("train"), join("val")
    what = ", ".join(data)
    if len(train_set) == 0:
        raise InputError(f"{what}: no train window of {length} bars (lookback {lookback} + horizon {horizon} + 1) "
                         "in any clean segment — pass more data or a smaller lookback or horizon",
                         param=("lookback", "horizon"))
    if len(val_set) == 0:
        part = "test period" if validation == "held-out" else "train period's tail"
        raise InputError(f"{what}: the {part} ({test_fraction:.0%} of each symbol) holds no window of "
                         f"{length} bars for validation — pass more data or a smaller lookback or horizon",
                         param=("lookback", "horizon"))
    if len(val_set) > max_val_windows:  # evenly spaced, deterministic: validation cost stays bounded
        keep = np.unique(np.linspace(0, len(val_set) - 1, max_val_windows).round().astype(np.int64))
        val_set.keep(keep)
    return TrainingData(train_set, val_set, records, preset.name, lookback, horizon, test_fraction, rep.name,
                        phase_offsets=bool(phase_offsets), validation=validation)
