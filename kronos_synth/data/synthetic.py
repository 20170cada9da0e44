"""The synthetic dataset format (Parquet, schema v1): the contract between generators and metrics.

A dataset is a folder of `part-00000.parquet, part-00001.parquet, …` plus `_manifest.json`.
Long format, one row per bar (columns: docs/schema.md). Part k always holds the sequence ids
[k·P, (k+1)·P) for the part size P fixed by the run, so an interrupted run resumes by writing
only the parts that are missing, and shards of one run (other processes or machines) can write
disjoint parts of the same folder. A part is written to a temporary name and renamed, so a
crash never leaves half a part behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kronos_synth.data.errors import InputError

SCHEMA_VERSION = 1
METADATA_KEY = b"kronos_synth"
MANIFEST = "_manifest.json"
BAR_COLUMNS = ("open", "high", "low", "close", "volume", "amount")

ARROW_SCHEMA = pa.schema(
    [
        pa.field("sequence_id", pa.int64(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("timestamp", pa.timestamp("ns")),
        *[pa.field(c, pa.float64()) for c in BAR_COLUMNS],
        pa.field("symbol", pa.dictionary(pa.int32(), pa.string())),
        pa.field("context_end", pa.timestamp("ns")),
    ]
)

#: optional columns: written when the frame has them (panel runs), read when the parts have them
OPTIONAL_FIELDS = (pa.field("panel_id", pa.int64(), nullable=False),)

# Settings that may differ between two invocations of the same run (they do not change the data).
_VOLATILE_KEYS = {"created_at", "toolkit_version", "device", "dtype_note", "wall_time_s", "part_index",
                  "sequence_range", "workers"}


class SyntheticDataError(InputError):
    """A synthetic dataset (folder or file) that cannot be read, or an output folder of another run."""


def run_key(metadata: dict[str, Any]) -> str:
    """Hash of the settings that decide the data; two runs with the same key write the same bytes."""
    stable = {k: v for k, v in metadata.items() if k not in _VOLATILE_KEYS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sequences_to_frame(
    values: np.ndarray,
    timestamps: np.ndarray,
    sequence_ids: np.ndarray,
    symbols: np.ndarray | str = "",
    context_end: np.ndarray | None = None,
    first_step: int = 0,
) -> pd.DataFrame:
    """(n, T, 6) bars + (n, T) timestamps → the long schema-v1 frame (one row per bar)."""
    values = np.asarray(values, dtype=np.float64)
    n, t, f = values.shape
    if f != len(BAR_COLUMNS):
        raise ValueError(f"expected {len(BAR_COLUMNS)} features {BAR_COLUMNS}, got {f}")
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    if ts.shape != (n, t):
        raise ValueError(f"timestamps shape {ts.shape} does not match bars {(n, t)}")
    sym = np.broadcast_to(np.asarray(symbols, dtype=object), (n,))
    ctx = (np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]") if context_end is None
           else np.asarray(context_end, dtype="datetime64[ns]"))
    frame = {
        "sequence_id": np.repeat(np.asarray(sequence_ids, dtype=np.int64), t),
        "step": np.tile(np.arange(first_step, first_step + t, dtype=np.int32), n),
        "timestamp": ts.reshape(-1),
    }
    for j, c in enumerate(BAR_COLUMNS):
        frame[c] = values[:, :, j].reshape(-1)
    frame["symbol"] = pd.Categorical(np.repeat(sym, t).astype(str))
    frame["context_end"] = np.repeat(ctx, t)
    return pd.DataFrame(frame)


def _to_table(frame: pd.DataFrame, metadata: dict[str, Any]) -> pa.Table:
    missing = [f.name for f in ARROW_SCHEMA if f.name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks schema-v1 columns {missing}")
    cols = []
    for f in ARROW_SCHEMA:
        col = frame[f.name]
        if f.name == "symbol":
            arr = pa.array(col.astype(str).to_numpy(dtype=object), type=pa.string()).dictionary_encode()
            arr = arr.cast(f.type)
        elif pa.types.is_timestamp(f.type):
            arr = pa.array(np.asarray(col, dtype="datetime64[ns]"), type=f.type)
        else:
            arr = pa.array(np.asarray(col), type=f.type)
        cols.append(arr)
    schema = ARROW_SCHEMA
    for f in OPTIONAL_FIELDS:
        if f.name in frame.columns:
            cols.append(pa.array(np.asarray(frame[f.name]), type=f.type))
            schema = schema.append(f)
    table = pa.Table.from_arrays(cols, schema=schema)
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True, default=str).encode()}
    return table.replace_schema_metadata(meta)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class PartInfo:
    index: int
    file: str
    rows: int
    sequences: int
    first_sequence_id: int
    last_sequence_id: int


class ParquetSequenceWriter:
    """Writes a schema-v1 dataset part by part; resumes a run that was interrupted.

    `metadata` are the run's settings (generator, model ids and hashes, sampling settings, seed, freq,
    lookback, horizon, …). Opening a folder that holds parts of a run with other settings raises
    `SyntheticDataError`; opening one of the same run lets the caller skip the parts already written
    (`pending_parts`).

    `shard=True` makes a worker-side writer for a run whose manifest another process owns (the Ray
    driver): it writes part files only and never reads or writes the manifest, so workers cannot race
    on it; the owner adopts each finished part with `record_part`.
    """

    def __init__(self, out_dir: str | os.PathLike, *, n: int, sequences_per_part: int,
                 metadata: dict[str, Any], shard: bool = False) -> None:
        if n <= 0:
            raise InputError(f"n must be a positive number of sequences, got {n}", param="n")
        if sequences_per_part <= 0:
            raise ValueError("sequences_per_part must be positive")
        self.out_dir = Path(out_dir)
        self.n, self.part_size = int(n), int(sequences_per_part)
        self.metadata = {
            **metadata,
            "schema_version": SCHEMA_VERSION,
            "n": self.n,
            "sequences_per_part": self.part_size,
        }
        self.metadata.setdefault("toolkit_version", _toolkit_version())
        self.metadata.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.key = run_key(self.metadata)
        self.parts: dict[int, PartInfo] = {}
        self.shard = bool(shard)
        if self.shard:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._open()

    @property
    def n_parts(self) -> int:
        return -(-self.n // self.part_size)

    def part_range(self, index: int) -> tuple[int, int]:
        """Sequence ids [start, stop) that part `index` holds."""
        start = index * self.part_size
        return start, min(self.n, start + self.part_size)

    def pending_parts(self) -> list[int]:
        return [k for k in range(self.n_parts) if k not in self.parts]

    @property
    def complete(self) -> bool:
        return not self.pending_parts()

    def _open(self) -> None:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise SyntheticDataError(f"{self.out_dir}: exists and is not a folder — pass a folder path as out",
                                     param="out")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        manifest_path = self.out_dir / MANIFEST
        if manifest_path.exists():
            try:
                manifest = read_manifest(manifest_path)
            except SyntheticDataError as e:
                raise SyntheticDataError(f"{e} — use a new out folder", param="out") from None
            if manifest.get("run_key") != self.key:
                raise SyntheticDataError(
                    f"{self.out_dir}: holds a different run (other settings) — pass a new out folder, "
                    "or delete this one to start over", param="out")
            # A manifest lists what was complete when it was written; trust only parts still on disk.
            for p in manifest.get("parts", []):
                if (self.out_dir / p["file"]).exists():
                    self.parts[p["index"]] = PartInfo(**p)
        elif any(self.out_dir.glob("part-*.parquet")):
            raise SyntheticDataError(
                f"{self.out_dir}: holds parquet parts without a {MANIFEST} — pass a new out folder", param="out")
        # Parts written by other shards after the manifest: adopt them if they carry our run key.
        for path in sorted(self.out_dir.glob("part-*.parquet")):
            index = int(path.stem.split("-")[1])
            if index not in self.parts:
                self._adopt(index)
        self._write_manifest()

    def _adopt(self, index: int) -> PartInfo:
        path = self.out_dir / f"part-{index:05d}.parquet"
        meta = read_part_metadata(path)
        if meta.get("run_key") != self.key:
            raise SyntheticDataError(f"{path}: belongs to a different run — pass a new out folder", param="out")
        md = pq.read_metadata(path)
        start, stop = self.part_range(index)
        self.parts[index] = PartInfo(index, path.name, md.num_rows, stop - start, start, stop - 1)
        return self.parts[index]

    def record_part(self, index: int) -> PartInfo:
        """Adopt part `index` that a shard writer finished (checking its run key) and rewrite the manifest."""
        if self.shard:
            raise ValueError("a shard writer does not own the manifest")
        if not (self.out_dir / f"part-{index:05d}.parquet").exists():
            raise SyntheticDataError(
                f"{self.out_dir}: part {index} was reported written but is not there — with several machines, "
                "out must be a folder every node shares (NFS or similar)", param="out")
        info = self._adopt(index)
        self._write_manifest()
        return info

    def write_part(self, index: int, frame: pd.DataFrame, extra_metadata: dict[str, Any] | None = None) -> PartInfo:
        """Write part `index` (must hold exactly its sequence ids) atomically and record it."""
        start, stop = self.part_range(index)
        ids = np.unique(frame["sequence_id"].to_numpy())
        if len(ids) != stop - start or ids[0] != start or ids[-1] != stop - 1:
            raise ValueError(f"part {index} must hold sequence ids {start}..{stop - 1}")
        # created_at stays in the manifest only, so the same seed gives byte-identical parts.
        meta = {k: v for k, v in self.metadata.items() if k != "created_at"}
        meta.update(extra_metadata or {}, run_key=self.key, part_index=index, sequence_range=[start, stop])
        table = _to_table(frame.sort_values(["sequence_id", "step"], kind="stable"), meta)
        name = f"part-{index:05d}.parquet"
        tmp = self.out_dir / f".{name}.tmp-{os.getpid()}"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.out_dir / name)
        info = PartInfo(index, name, table.num_rows, stop - start, start, stop - 1)
        self.parts[index] = info
        if not self.shard:
            self._write_manifest()
        return info

    def _write_manifest(self) -> None:
        parts = [vars(self.parts[k]) for k in sorted(self.parts)]
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "run_key": self.key,
            "n": self.n,
            "sequences_per_part": self.part_size,
            "complete": self.complete,
            "rows": int(sum(p["rows"] for p in parts)),
            "sequences": int(sum(p["sequences"] for p in parts)),
            "parts": parts,
            "metadata": self.metadata,
        }
        _atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str))


def _toolkit_version() -> str:
    from kronos_synth import __version__

    return __version__


def read_part_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The `kronos_synth` JSON metadata of one part file ({} when absent)."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise SyntheticDataError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError as e:
        raise SyntheticDataError(f"{path}: its {METADATA_KEY.decode()} metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise SyntheticDataError(f"{path}: its {METADATA_KEY.decode()} metadata is not a JSON object")
    return meta


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """A dataset's `_manifest.json`, checked: a JSON object whose `parts` (if any) lists objects that name a
    `file`. Anything else (truncated, `[]`, …) raises `SyntheticDataError` naming the file."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SyntheticDataError(f"{path}: unreadable manifest ({_first_line(e)})") from None
    if not isinstance(manifest, dict):
        raise SyntheticDataError(f"{path}: the manifest is {_JSON_TYPES.get(type(manifest), 'not an object')}, "
                                 "not a JSON object")
    parts = manifest.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("file"), str)
                                              and isinstance(p.get("index"), int) for p in parts):
        raise SyntheticDataError(f"{path}: 'parts' of the manifest is not a list of parts (index, file)")
    return manifest


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


@dataclass
class SyntheticDataset:
    """A schema-v1 dataset read back: the long frame, the run metadata and the manifest."""

    frame: pd.DataFrame
    metadata: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def n_sequences(self) -> int:
        return int(self.frame["sequence_id"].nunique())

    def generated(self) -> pd.DataFrame:
        """Only the generated bars (step ≥ 0), without context bars."""
        return self.frame[self.frame["step"] >= 0]

    def to_array(self, features: tuple[str, ...] = BAR_COLUMNS, *, include_context: bool = False) -> np.ndarray:
        """(n, H, F) array of bars in sequence-id order; all sequences must have the same length."""
        df = self.frame if include_context else self.generated()
        df = df.sort_values(["sequence_id", "step"], kind="stable")
        counts = df.groupby("sequence_id", sort=True).size().to_numpy()
        if len(counts) == 0:
            raise SyntheticDataError(f"{self.path}: holds no generated bars")
        if (counts != counts[0]).any():
            raise SyntheticDataError(
                f"{self.path}: sequences have different lengths ({counts.min()}..{counts.max()} bars) — "
                "metrics need equal-length sequences")
        return df.loc[:, list(features)].to_numpy(dtype=np.float64).reshape(len(counts), counts[0], len(features))

    def to_panels(self, features: tuple[str, ...] = BAR_COLUMNS) -> tuple[np.ndarray, tuple[str, ...]]:
        """A panel run's bars as (n_panels, A, H, F) and the A symbols in panel order (`generate --panel`)."""
        if "panel_id" not in self.frame.columns:
            raise SyntheticDataError(f"{self.path}: has no panel_id column — not a panel dataset "
                                     "(generate it with --panel)")
        bars = self.to_array(features)
        first = self.generated().drop_duplicates("sequence_id").sort_values("sequence_id")
        panel = first["panel_id"].to_numpy()
        a = int(np.bincount(panel).max())
        if len(panel) % a or (panel != np.repeat(np.arange(len(panel) // a), a)).any():
            raise SyntheticDataError(f"{self.path}: panels are incomplete (every panel needs its {a} symbols)")
        symbols = tuple(str(s) for s in first["symbol"].to_numpy()[:a])
        return bars.reshape(len(panel) // a, a, *bars.shape[1:]), symbols

    def spans(self) -> np.ndarray | None:
        """(n, 2) int64 ns: first and last generated bar time per sequence (sequence-id order); None
        when the dataset has no timestamps."""
        ts = self.generated().groupby("sequence_id", sort=True)["timestamp"].agg(["min", "max"])
        if ts.isna().to_numpy().any():
            return None
        return ts.to_numpy(dtype="datetime64[ns]").astype("int64").reshape(-1, 2)

    def sequence_frames(self) -> Iterator[tuple[int, pd.DataFrame]]:
        for sid, g in self.generated().groupby("sequence_id", sort=True):
            yield int(sid), g


def _part_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SyntheticDataError(f"{path}: no such file or folder — pass a dataset folder written by "
                                 "`kronos-synth generate` or `baseline sample`")
    files = sorted(path.glob("part-*.parquet")) or sorted(path.glob("*.parquet"))
    if not files:
        raise SyntheticDataError(f"{path}: holds no .parquet parts — is this a synthetic dataset folder?")
    return files


def _check_one_run(path: Path, files: list[Path], run: str | None) -> None:
    """Every part must carry the same run key (the manifest's, when there is one): parts of two runs in one
    folder are two datasets, not one."""
    first = None
    for f in files:
        key = read_part_metadata(f).get("run_key")
        if run is not None:
            if key != run:
                raise SyntheticDataError(f"{f}: belongs to run {key} but {MANIFEST} of {path} is run {run} — "
                                         "the folder mixes two runs; keep one run per folder")
        elif first is None:
            first = (f, key)
        elif key != first[1]:
            raise SyntheticDataError(f"{path}: holds parts of different runs ({first[0].name}: run {first[1]}, "
                                     f"{f.name}: run {key}) and no {MANIFEST} — keep one run per folder")


def read_synthetic(path: str | os.PathLike, *, require_complete: bool = True) -> SyntheticDataset:
    """Read and validate a schema-v1 dataset (folder or single part file)."""
    path = Path(path)
    files = _part_files(path)
    manifest: dict[str, Any] = {}
    if path.is_dir() and (path / MANIFEST).exists():
        manifest = read_manifest(path / MANIFEST)
        if require_complete and not manifest.get("complete", False):
            raise SyntheticDataError(
                f"{path}: the run is incomplete ({manifest.get('sequences', 0)} of {manifest.get('n')} "
                "sequences) — rerun the same command to finish it")
        listed = {p["file"] for p in manifest.get("parts", [])}
        files = [f for f in files if f.name in listed]
        if not files:
            raise SyntheticDataError(f"{path}: none of the parts {MANIFEST} lists is in the folder")
    _check_one_run(path, files, manifest.get("run_key"))
    tables = []
    for f in files:
        try:
            t = pq.read_table(f)
        except (OSError, pa.ArrowInvalid) as e:
            raise SyntheticDataError(f"{f}: not a readable Parquet file ({e})") from e
        missing = [c.name for c in ARROW_SCHEMA if c.name not in t.column_names]
        if missing:
            raise SyntheticDataError(f"{f}: column '{missing[0]}' is missing — not a schema-v1 synthetic dataset")
        optional = [f.name for f in OPTIONAL_FIELDS if f.name in t.column_names]
        tables.append(t.select([c.name for c in ARROW_SCHEMA] + optional))
    table = pa.concat_tables(tables, promote_options="permissive")
    metadata = read_part_metadata(files[0])
    version = metadata.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SyntheticDataError(f"{files[0]}: schema_version {version} is not supported (this toolkit reads "
                                 f"{SCHEMA_VERSION})")
    frame = table.to_pandas()
    frame["symbol"] = frame["symbol"].astype(str)
    for c in BAR_COLUMNS:
        bad = ~np.isfinite(frame[c].to_numpy())
        if bad.any():
            i = int(np.argmax(bad))
            raise SyntheticDataError(f"{path}: column '{c}', row {i}: non-finite value in synthetic data")
    dup = frame.duplicated(["sequence_id", "step"])
    if dup.any():
        i = int(np.argmax(dup.to_numpy()))
        raise SyntheticDataError(f"{path}: row {i}: sequence {frame['sequence_id'].iloc[i]} step "
                                 f"{frame['step'].iloc[i]} appears twice")
    frame = frame.sort_values(["sequence_id", "step"], kind="stable").reset_index(drop=True)
    return SyntheticDataset(frame=frame, metadata=metadata, manifest=manifest, path=str(path))
