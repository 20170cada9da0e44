"""Pretraining corpora: folders of many instruments and bar sizes → cleaned, split, windowed arrays.

`build_corpus` walks every source folder for K-line files (CSV, TSV, headerless exports, Parquet,
Feather), infers each file's bar size, cleans it with the data layer's rules and splits it:
- whole instruments are held out for zero-shot validation, chosen by a seeded hash of the
  instrument's name (every file and bar size of an instrument goes the same way);
- every other instrument is split by time: the last `val_fraction` of its bars is its validation
  period, a gap of one window before it belongs to neither part (as `split_by_time`);
- `embargo` rules drop the bars of matching instruments inside a period (benchmark test periods)
  before anything else, so they can never reach training.

Output folder:
    manifest.json                  sources, sha256, bar counts, what cleaning dropped, split per file
    {train,val,holdout}/{freq}/    rows.npy (R, 6) float64, timestamps.npy (R,) int64 ns,
                                   starts.npy (N,) int64 window starts, instrument.npy (N,) int32
Windows are every run of `lookback + horizon + 1` bars of the frequency preset inside one clean
segment; trainers memory-map the arrays (`kronos_synth.train.corpus`), so nothing is loaded whole.
Files that are not K-lines or not at a wanted bar size are skipped and listed with the reason.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import RULES, clean_klines
from kronos_synth.data.errors import InputError, KlineDataError
from kronos_synth.data.frequency import get_preset, infer_frequency
from kronos_synth.data.hashing import sha256_file
from kronos_synth.data.readers import KLINE_SUFFIXES, _klines_and_report, _map_columns, _read_raw
from kronos_synth.data.schema import FEATURES, PRICE_COLUMNS, SYMBOL, TIMESTAMPS
from kronos_synth.data.splits import split_by_time, window_starts
from kronos_synth.data.synthetic import MANIFEST as SYNTHETIC_MANIFEST

SCHEMA = "kronos-synth corpus v1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "holdout")
DEFAULT_FREQS = ("5min", "15min", "30min", "1h", "4h", "daily")
# a bar-size suffix of a file name: BTC_USDT-15m, XAUUSD_D1, AAPLUSUSD_M15, AUDCAD240, BTCUSDT_1h
_FREQ_SUFFIX = re.compile(r"([-_. ](\d+(min|mo|m|h|d|w)|[mhdw]\d+|mn\d*)|(?<=[a-z])\d{2,4})$", re.IGNORECASE)


@dataclass(frozen=True)
class Embargo:
    """Bars of instruments matching `pattern` (fnmatch on the instrument name) in [start, end] are dropped."""

    pattern: str
    start: str
    end: str

    @classmethod
    def parse(cls, text: str) -> Embargo:
        """'PATTERN@START..END', e.g. 'USA500*@2015-01-01..2018-12-31'."""
        m = re.fullmatch(r"([^@]+)@([^.]+)\.\.(.+)", text.strip())
        if not m:
            raise InputError(f"embargo {text!r}: expected PATTERN@START..END, e.g. 'EURUSD*@2019-01-01..2020-12-31'")
        try:
            pd.Timestamp(m.group(2)), pd.Timestamp(m.group(3))
        except ValueError as e:
            raise InputError(f"embargo {text!r}: {e}") from None
        return cls(m.group(1).upper(), m.group(2), m.group(3))

    def mask(self, instrument: str, timestamps: pd.Series) -> np.ndarray:
        if not fnmatch.fnmatchcase(instrument, self.pattern):
            return np.zeros(len(timestamps), dtype=bool)
        t = timestamps.to_numpy()
        return (t >= np.datetime64(pd.Timestamp(self.start))) & (t <= np.datetime64(pd.Timestamp(self.end)))


@dataclass(frozen=True)
class CorpusConfig:
    """How a corpus is split and which bar sizes it keeps."""

    val_fraction: float = 0.1
    holdout_fraction: float = 0.1
    seed: int = 0
    freqs: tuple[str, ...] = DEFAULT_FREQS
    embargo: tuple[Embargo, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if not 0 <= self.holdout_fraction < 1:
            raise InputError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        object.__setattr__(self, "freqs", tuple(get_preset(f).name for f in self.freqs))


def instrument_name(path: str) -> str:
    """The instrument a file holds, from its name without bar-size suffix: upper-case letters and digits
    (`BTC_USDT-15m.feather` → BTCUSDT, `XAUUSD_D1.csv` → XAUUSD, `AUDCAD240.csv` → AUDCAD)."""
    stem = os.path.basename(path)
    for suffix in sorted(KLINE_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = _FREQ_SUFFIX.sub("", stem)
    return re.sub(r"[^A-Za-z0-9]", "", stem).upper() or "UNNAMED"


def is_holdout(instrument: str, seed: int, fraction: float) -> bool:
    """Seeded hash of the instrument name → uniform in [0, 1); held out below `fraction`."""
    h = hashlib.sha256(f"{seed}:{instrument}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction




def _parse_source(src: str) -> tuple[str | None, str]:
    """'GROUP=PATH' or 'PATH'."""
    if "=" in src and not os.path.exists(src):
        group, path = src.split("=", 1)
        return group.strip() or None, path
    return None, src


def _files(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise InputError(f"corpus source {root}: no such file or folder")
    out = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, n) for n in sorted(names) if n.lower().endswith(KLINE_SUFFIXES)]
    return out


def _group_of(root: str, path: str, group: str | None) -> str:
    if group:
        return group
    rel = os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)
    parts = Path(rel).parts
    return parts[0] if len(parts) > 1 else os.path.basename(os.path.normpath(root))



@dataclass
class _Part:
    rows: list[np.ndarray] = field(default_factory=list)
    stamps: list[np.ndarray] = field(default_factory=list)
    starts: list[np.ndarray] = field(default_factory=list)
    instrument: list[np.ndarray] = field(default_factory=list)
    n_rows: int = 0

    def add(self, frame: pd.DataFrame, length: int, instrument_id: int) -> int:
        """Append a clean frame (one instrument, `segment` column); returns its number of windows."""
        starts = window_starts(frame, length)
        self.rows.append(frame[list(FEATURES)].to_numpy(dtype=np.float64))
        self.stamps.append(frame[TIMESTAMPS].to_numpy().astype("datetime64[ns]").astype(np.int64))
        self.starts.append(starts + self.n_rows)
        self.instrument.append(np.full(len(starts), instrument_id, dtype=np.int32))
        self.n_rows += len(frame)
        return int(len(starts))

    def write(self, folder: Path) -> dict[str, int]:
        folder.mkdir(parents=True, exist_ok=True)
        cat = lambda xs, shape, dt: np.concatenate(xs) if xs else np.zeros(shape, dtype=dt)  # noqa: E731
        np.save(folder / "rows.npy", cat(self.rows, (0, len(FEATURES)), np.float64))
        np.save(folder / "timestamps.npy", cat(self.stamps, (0,), np.int64))
        starts = cat(self.starts, (0,), np.int64)
        np.save(folder / "starts.npy", starts)
        np.save(folder / "instrument.npy", cat(self.instrument, (0,), np.int32))
        return {"rows": self.n_rows, "windows": int(len(starts))}


def _drop_invalid_rows(raw: pd.DataFrame, cols: dict[str, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """A vendor file with a few broken bars keeps the rest: rows with unparseable times, non-positive or
    non-finite prices, or high < low are dropped, then the rows are sorted by time and repeated
    timestamps keep their first bar. Returns the kept rows and the count dropped per reason."""
    t = pd.to_datetime(raw[cols[TIMESTAMPS]], errors="coerce", utc=True, format="mixed") \
        if not pd.api.types.is_numeric_dtype(raw[cols[TIMESTAMPS]]) else raw[cols[TIMESTAMPS]]
    prices = np.stack([pd.to_numeric(raw[cols[c]], errors="coerce").to_numpy(dtype=np.float64)
                       for c in PRICE_COLUMNS], axis=1)
    bad_time = pd.isna(t).to_numpy()
    bad_price = ~(np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1)) & ~bad_time
    high_low = (prices[:, 1] < prices[:, 2]) & ~bad_price & ~bad_time
    keep = ~(bad_time | bad_price | high_low)
    kept = raw.loc[keep].assign(_t=np.asarray(t)[keep]).sort_values("_t", kind="stable")
    dup = kept["_t"].duplicated(keep="first").to_numpy()
    out = kept.loc[~dup].drop(columns="_t").reset_index(drop=True)
    counts = {"unparseable_time": int(bad_time.sum()), "non_positive_price": int(bad_price.sum()),
              "high_below_low": int(high_low.sum()), "duplicate_time": int(dup.sum()),
              "resorted": bool((np.diff(np.asarray(kept.index)) < 0).any())}
    return out, {k: v for k, v in counts.items() if v}


def _period(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"rows": 0}
    return {"first": str(frame[TIMESTAMPS].iloc[0]), "last": str(frame[TIMESTAMPS].iloc[-1]), "rows": int(len(frame))}


def build_corpus(sources: Sequence[str], out: str | os.PathLike, config: CorpusConfig = CorpusConfig(), *,
                 log: Callable[[str], None] = lambda line: None, progress: bool | None = None) -> dict[str, Any]:
    """Read, clean, split and window every K-line file under `sources` ('PATH' or 'GROUP=PATH'); write
    the arrays and `manifest.json` to `out` (module doc). Returns the manifest. `out` is written
    whole or not at all: the arrays go to a temporary sibling folder that is renamed at the end."""
    if not sources:
        raise InputError("corpus: no source folder given")
    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise InputError(f"corpus: {out} exists and is not a corpus folder — choose a new output folder")
    files: list[tuple[str, str, str | None]] = []  # (root, path, group)
    for src in sources:
        group, root = _parse_source(src)
        files += [(root, f, group) for f in _files(root)]
    if not files:
        raise InputError(f"corpus: no K-line files ({', '.join(KLINE_SUFFIXES)}) under {', '.join(sources)}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    parts: dict[tuple[str, str], _Part] = {}
    instruments: dict[str, dict[str, Any]] = {}
    records, skipped = [], []
    from tqdm.auto import tqdm

    from kronos_synth.progress import show_progress

    for root, path, group in tqdm(files, disable=not show_progress(progress), unit="file", desc="corpus"):
        rel = os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)
        name = instrument_name(path)
        entry: dict[str, Any] = {"source": root, "path": rel, "sha256": sha256_file(path), "instrument": name,
                                 "group": _group_of(root, path, group)}
        if (Path(path).parent / SYNTHETIC_MANIFEST).is_file():  # generated data must never pass as real
            skipped.append({**entry, "reason": "part of a kronos-synth synthetic dataset, not real data"})
            log(f"skipped {rel}: {skipped[-1]['reason']}")
            continue
        try:
            raw = _read_raw(path)
            given = _map_columns(raw, path)
            try:
                df, _ = _klines_and_report(raw, file=path, strict=False, symbol=name)
            except KlineDataError as first:
                if TIMESTAMPS not in given or any(c not in given for c in PRICE_COLUMNS):
                    raise
                raw, repaired = _drop_invalid_rows(raw, given)
                df, _ = _klines_and_report(raw, file=path, strict=False, symbol=name)
                entry["repaired"] = {"first_error": str(first).replace(f"{path}, ", ""), **repaired}
        except KlineDataError as e:
            skipped.append({**entry, "reason": str(e).replace(f"{path}: ", "").replace(f"{path}, ", "")})
            log(f"skipped {rel}: {skipped[-1]['reason']}")
            continue
        if df[SYMBOL].nunique() > 1:
            skipped.append({**entry, "reason": "several symbols in one file (one instrument per file expected)"})
            continue
        df[SYMBOL] = name
        try:
            preset = infer_frequency(df)
        except InputError as e:  # spacing of no preset (monthly bars, ticks) or a single bar
            skipped.append({**entry, "reason": f"bar size: {str(e).split(' — ')[0]}"})
            continue
        if preset.name not in config.freqs:
            skipped.append({**entry, "reason": f"bar size {preset.name} not in {', '.join(config.freqs)}"})
            continue
        entry.update(freq=preset.name, rows_read=int(len(df)),
                     amount="given" if "amount" in given else
                     ("approximated: volume × mean(open, high, low, close)" if "volume" in given
                      else "none: no volume and no amount (both 0)"))
        embargoed = np.zeros(len(df), dtype=bool)
        for rule in config.embargo:
            embargoed |= rule.mask(name, df[TIMESTAMPS])
        if embargoed.any():
            entry["rows_embargoed"] = int(embargoed.sum())
            df = df.loc[~embargoed].reset_index(drop=True)
        length = preset.lookback + preset.horizon + 1
        cleaned = clean_klines(df, preset, min_segment_bars=length)
        rep = cleaned.report
        entry["cleaning"] = {"rows_kept": rep.rows_out, "segments": rep.segments,
                             "removed": {r: int(rep.removed[r]) for r in RULES if rep.removed[r]},
                             "splits": {r: int(rep.splits[r]) for r in RULES if rep.splits[r]}}
        clean = cleaned.frame
        holdout = is_holdout(name, config.seed, config.holdout_fraction)
        info = instruments.setdefault(name, {"id": len(instruments), "group": entry["group"],
                                             "split": "holdout" if holdout else "train", "freqs": []})
        info["freqs"] = sorted(set(info["freqs"]) | {preset.name})
        if holdout:
            pieces = {"holdout": clean}
        elif clean.empty:
            pieces = {}
        else:
            try:
                train, val = split_by_time(clean, test_fraction=config.val_fraction, gap=length - 1)
            except KlineDataError:
                train, val = clean, clean.iloc[0:0]
                entry["note"] = "too short to split: all rows train"
            pieces = {"train": train, "val": val}
        entry["split"] = info["split"]
        for split, frame in pieces.items():
            windows = parts.setdefault((split, preset.name), _Part()).add(frame, length, info["id"])
            entry[split] = {**_period(frame), "windows": windows}
        records.append(entry)
        log(f"{rel}: {name} {preset.name} {entry['rows_read']} bars → "
            + ", ".join(f"{s} {entry[s]['windows']} windows" for s in pieces) + f" ({info['split']})")
    if not records:
        first = skipped[0]
        raise InputError(f"corpus: none of the {len(files)} files under {', '.join(sources)} gave usable K-lines "
                         f"(first: {first['path']}: {first['reason']})")
    arrays = {}
    for (split, freq), part in sorted(parts.items()):
        arrays.setdefault(split, {})[freq] = part.write(tmp / split / freq)
    manifest = {
        "schema": SCHEMA,
        "settings": {**{k: v for k, v in asdict(config).items() if k != "embargo"},
                     "embargo": [f"{e.pattern}@{e.start}..{e.end}" for e in config.embargo],
                     "windows": {f: {"lookback": get_preset(f).lookback, "horizon": get_preset(f).horizon}
                                 for f in config.freqs}},
        "sources": sorted({r for r, _, _ in files}),
        "instruments": instruments,
        "arrays": arrays,
        "files": records,
        "skipped": skipped,
    }
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest


def read_corpus_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a built corpus, checked for its schema."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a corpus manifest ({e}) — build one with `corpus build`") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise InputError(f"{path}: not a {SCHEMA} manifest")
    return manifest
