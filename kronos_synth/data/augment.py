"""Augmented training sets: real train-period windows mixed with synthetic sequences at a ratio.

`augment_training_set` cuts every window of L bars from the real train period (the same cleaning and
time split the evaluation uses: test = last 20 % per symbol, a gap of one window before it), draws
round(ratio × windows) synthetic sequences (their first L generated bars) without replacement, tags
each example with where it came from, and shuffles the examples with a seed. The result is long
format, one row per bar, so it reads like the synthetic datasets:

| column | meaning |
|---|---|
| sample_id | 0..N−1 in shuffled order (train on them in this order, or reshuffle) |
| step | 0..L−1 |
| timestamp, open, high, low, close, volume, amount, symbol | the bar |
| origin | "real" or "synthetic" |
| source | the real file / embedded dataset, or the synthetic dataset folder |
| window_start | real rows: first timestamp of the window (null for synthetic) |
| sequence_id | synthetic rows: sequence id in the synthetic dataset (null for real) |
| generator | synthetic rows: generator[:model] from the dataset metadata (null for real) |
| context_end | synthetic rows: last real timestamp of the conditioning context (null if none) |
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset, infer_frequency
from kronos_synth.data.sources import klines_for
from kronos_synth.data.splits import extract_windows, split_by_time
from kronos_synth.data.synthetic import BAR_COLUMNS, SyntheticDataset, read_synthetic


class AugmentError(InputError):
    """Arguments that cannot make an augmented set (ratio, window, too few sequences, output path)."""


METADATA_KEY = b"kronos_synth_augment"
FORMATS = ("parquet", "csv")

ARROW_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("timestamp", pa.timestamp("ns")),
        *[pa.field(c, pa.float64()) for c in BAR_COLUMNS],
        pa.field("symbol", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("source", pa.string()),
        pa.field("window_start", pa.timestamp("ns")),
        pa.field("sequence_id", pa.int64()),
        pa.field("generator", pa.string()),
        pa.field("context_end", pa.timestamp("ns")),
    ]
)


@dataclass
class AugmentedSet:
    """An augmented training set: the long frame (one row per bar) and how it was made."""

    frame: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> int:
        return int(self.frame["step"].max()) + 1 if len(self.frame) else 0

    @property
    def n_real(self) -> int:
        return int(self.frame.loc[self.frame["origin"] == "real", "sample_id"].nunique())

    @property
    def n_synthetic(self) -> int:
        return int(self.frame.loc[self.frame["origin"] == "synthetic", "sample_id"].nunique())

    def to_array(self, features: tuple[str, ...] = BAR_COLUMNS) -> np.ndarray:
        """(N, L, F) bars in sample_id order (what a forecaster trains on)."""
        df = self.frame.sort_values(["sample_id", "step"], kind="stable")
        n = int(df["sample_id"].nunique())
        return df.loc[:, list(features)].to_numpy(dtype=np.float64).reshape(n, -1, len(features))

    def origins(self) -> np.ndarray:
        """(N,) "real" / "synthetic" per sample, in sample_id order."""
        first = self.frame[self.frame["step"] == 0].sort_values("sample_id", kind="stable")
        return first["origin"].to_numpy(dtype=str)

    def summary(self) -> str:
        m = self.metadata
        return (f"{self.n_real} real + {self.n_synthetic} synthetic windows of {self.window} bars "
                f"(ratio {m.get('ratio')}, seed {m.get('seed')})")


def _real_frame(real: str | pd.DataFrame, freq: str | None) -> tuple[pd.DataFrame, str, str]:
    """K-lines of `real` at `freq` (resampled when finer), a label naming them, and the frequency name."""
    if isinstance(real, pd.DataFrame):
        preset = get_preset(freq) if freq else infer_frequency(real)
        return real, "dataframe", preset.name
    if freq is None:
        from kronos_synth.data.sources import load_klines

        frame = load_klines(real)
        return frame, real, infer_frequency(frame).name
    frame, label = klines_for(freq, real)
    return frame, label, get_preset(freq).name


def real_train_windows(frame: pd.DataFrame, freq: str, window: int, *, test_fraction: float = 0.2,
                       stride: int = 1):
    """Every `window`-bar window of the cleaned train period (gap of one window before the test period)."""
    cleaned = clean_klines(frame, freq).frame
    train, _ = split_by_time(cleaned, test_fraction=test_fraction, gap=window)
    return extract_windows(train, window, stride=stride)


def _generator_label(meta: dict[str, Any]) -> str:
    gen = str(meta.get("generator") or "unknown")
    model = meta.get("model")
    return f"{gen}:{model}" if model else gen


def augment_training_set(
    real: str | pd.DataFrame,
    synthetic: str | os.PathLike | SyntheticDataset,
    *,
    ratio: float,
    window: int | None = None,
    freq: str | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    stride: int = 1,
    max_real: int | None = None,
) -> AugmentedSet:
    """Real train-period windows + round(ratio × n_real) synthetic sequences, tagged and shuffled.

    `window` defaults to the synthetic sequences' generated length; synthetic sequences longer than it
    are cut to their first `window` bars. `freq` defaults to the synthetic dataset's. `max_real` keeps a
    seeded sample of that many real windows (all by default). Same arguments → same set.
    """
    if not np.isfinite(ratio) or ratio < 0:
        raise AugmentError(f"ratio must be a number >= 0 (synthetic sequences per real window), got {ratio}",
                           param="ratio")
    if stride < 1:
        raise AugmentError(f"stride must be >= 1, got {stride}", param="stride")
    if max_real is not None and max_real < 1:
        raise AugmentError(f"max_real must be >= 1, got {max_real}", param="max_real")
    ds = synthetic if isinstance(synthetic, SyntheticDataset) else read_synthetic(synthetic)
    syn_path = ds.path or str(synthetic)
    gen = ds.generated()
    lengths = gen.groupby("sequence_id", sort=True).size()
    if len(lengths) == 0:
        raise AugmentError(f"{syn_path}: holds no generated bars")
    horizon = int(lengths.min())
    window = horizon if window is None else int(window)
    if window < 2:
        raise AugmentError(f"window must be at least 2 bars, got {window}", param="window")
    if window > horizon:
        raise AugmentError(f"window={window} is longer than the synthetic sequences ({horizon} generated bars) "
                           f"— pass window={horizon} or less, or generate longer sequences", param="window")
    freq = freq or ds.metadata.get("freq")
    frame, real_label, freq_name = _real_frame(real, freq)
    windows = real_train_windows(frame, freq_name, window, test_fraction=test_fraction, stride=stride)
    if len(windows) == 0:
        raise AugmentError(f"{real_label}: no {window} consecutive clean bars in the train period — pass a "
                           "shorter window or more data", param="window")
    rng = np.random.default_rng(seed)
    available = len(windows)
    if max_real is not None and max_real < len(windows):
        windows = windows.take(np.sort(rng.choice(len(windows), max_real, replace=False)))
    n_real = len(windows)
    n_syn = int(round(ratio * n_real))
    ids = lengths.index.to_numpy()
    if n_syn > len(ids):
        need_ratio = len(ids) / n_real
        raise AugmentError(
            f"ratio {ratio} needs {n_syn} synthetic sequences for {n_real} real windows, but {syn_path} holds "
            f"{len(ids)} — generate more ({n_syn} sequences), lower ratio (≤ {need_ratio:.3g}) or cap max_real",
            param=("ratio", "max_real"))
    chosen = np.sort(rng.choice(ids, n_syn, replace=False)) if n_syn else ids[:0]

    # Synthetic bars: the first `window` generated bars of each chosen sequence.
    sub = gen[gen["sequence_id"].isin(chosen) & (gen["step"] < window)]
    sub = sub.sort_values(["sequence_id", "step"], kind="stable")
    syn_values = sub.loc[:, list(BAR_COLUMNS)].to_numpy(np.float64).reshape(n_syn, window, len(BAR_COLUMNS))
    syn_ts = sub["timestamp"].to_numpy("datetime64[ns]").reshape(n_syn, window)
    first = sub[sub["step"] == 0]
    n = n_real + n_syn
    order = rng.permutation(n)  # example k of the concatenation gets sample_id order[k]
    nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    label = _generator_label(ds.metadata)
    per_sample = pd.DataFrame({
        "sample_id": order,
        "symbol": np.concatenate([windows.symbols.astype(str), first["symbol"].to_numpy(dtype=str)]),
        "origin": ["real"] * n_real + ["synthetic"] * n_syn,
        "source": [real_label] * n_real + [syn_path] * n_syn,
        "window_start": np.concatenate([windows.timestamps[:, 0], nat[:n_syn]]),
        "sequence_id": pd.arrays.IntegerArray(np.concatenate([np.zeros(n_real, np.int64), chosen.astype(np.int64)]),
                                              np.arange(n) < n_real),
        "generator": pd.array([None] * n_real + [label] * n_syn, dtype="string"),
        "context_end": np.concatenate([nat[:n_real], first["context_end"].to_numpy("datetime64[ns]")]),
    })
    values = np.concatenate([windows.values, syn_values]) if n_syn else windows.values
    stamps = np.concatenate([windows.timestamps, syn_ts]) if n_syn else windows.timestamps
    inv = np.argsort(order)  # rows in sample_id order
    values, stamps, per_sample = values[inv], stamps[inv], per_sample.iloc[inv].reset_index(drop=True)
    rep = np.repeat(np.arange(n), window)
    out = per_sample.iloc[rep].reset_index(drop=True)
    out.insert(1, "step", np.tile(np.arange(window, dtype=np.int32), n))
    out.insert(2, "timestamp", stamps.reshape(-1))
    for j, c in enumerate(BAR_COLUMNS):
        out.insert(3 + j, c, values[:, :, j].reshape(-1))
    out = out[[f.name for f in ARROW_SCHEMA]]
    metadata = {
        "ratio": float(ratio), "seed": int(seed), "window": window, "freq": freq_name,
        "test_fraction": float(test_fraction), "stride": int(stride), "max_real": max_real,
        "n_real": n_real, "n_synthetic": n_syn, "real_windows_available": available, "real_source": real_label, "synthetic_source": syn_path, "generator": label,
        "synthetic_metadata": {k: v for k, v in ds.metadata.items()
                               if k not in ("part_index", "sequence_range", "raw_violations")},
    }
    return AugmentedSet(out, metadata)


def _to_table(aug: AugmentedSet) -> pa.Table:
    cols = []
    for f in ARROW_SCHEMA:
        col = aug.frame[f.name]
        if pa.types.is_timestamp(f.type):
            arr = pa.array(np.asarray(col, dtype="datetime64[ns]"), type=f.type)
        elif f.name == "sequence_id":
            arr = pa.array(col.astype("Int64").to_numpy(dtype=object, na_value=None), type=f.type)
        elif pa.types.is_string(f.type):
            arr = pa.array(col.astype(object).where(col.notna(), None).tolist(), type=f.type)
        else:
            arr = pa.array(np.asarray(col), type=f.type)
        cols.append(arr)
    table = pa.Table.from_arrays(cols, schema=ARROW_SCHEMA)
    meta = {METADATA_KEY: json.dumps(aug.metadata, sort_keys=True, default=str).encode()}
    return table.replace_schema_metadata(meta)


def _format_for(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise AugmentError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", param="format")
        return fmt
    return "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet"


def _check_out(out: str, fmt: str | None) -> tuple[str, str]:
    fmt = _format_for(out, fmt)
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise AugmentError(f"{out}: is a folder — out takes a file path, e.g. {os.path.join(out, 'train.parquet')}",
                           param="out")
    if not os.path.isdir(folder):
        raise AugmentError(f"{out}: the folder {folder} does not exist — create it first")
    return fmt, folder


def write_augmented(aug: AugmentedSet, out: str | os.PathLike, *, format: str | None = None) -> str:
    """Write the set to one file (Parquet by default, CSV when asked or by extension), atomically."""
    out = str(out)
    fmt, folder = _check_out(out, format)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.tmp-", dir=folder)
    os.close(fd)
    try:
        if fmt == "parquet":
            pq.write_table(_to_table(aug), tmp, compression="zstd")
        else:
            aug.frame.to_csv(tmp, index=False, compression="gzip" if out.lower().endswith(".gz") else None)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def read_augmented(path: str | os.PathLike) -> AugmentedSet:
    """Read a set written by `write_augmented` (Parquet or CSV)."""
    path = str(path)
    if not Path(path).is_file():
        raise AugmentError(f"{path}: no such file")
    if path.lower().endswith((".csv", ".csv.gz")):
        frame = pd.read_csv(path, parse_dates=["timestamp", "window_start", "context_end"])
        frame["sequence_id"] = frame["sequence_id"].astype("Int64")
        return AugmentedSet(frame, {})
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return AugmentedSet(table.to_pandas(), json.loads(raw) if raw else {})


def augment(real: str, synthetic: str, *, ratio: float, out: str, format: str | None = None,
            **kwargs: Any) -> AugmentedSet:
    """`augment_training_set` then `write_augmented`: the one call behind `kronos-synth augment`."""
    _check_out(str(out), format)  # fail on a bad `out` before the work, not after
    aug = augment_training_set(real, synthetic, ratio=ratio, **kwargs)
    write_augmented(aug, out, format=format)
    return aug


__all__ = ["AugmentError", "AugmentedSet", "augment", "augment_training_set",
           "read_augmented", "real_train_windows", "write_augmented"]
