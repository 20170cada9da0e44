"""Read K-line files (CSV, TSV, CSV.gz, Parquet, Feather) into the canonical, validated K-line frame.

Canonical frame: `symbol, timestamps, open, high, low, close, volume, amount`, sorted by symbol
then time (file order is kept within a symbol: unsorted time is an error, not something we fix).
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import zipfile

import numpy as np
import pandas as pd

from kronos_synth.data.errors import KlineDataError
from kronos_synth.data.schema import (
    COLUMN_ALIASES,
    FEATURES,
    KLINE_COLUMNS,
    PRICE_COLUMNS,
    SYMBOL,
    TICK_VOLUME_ALIASES,
    TIMESTAMP_ALIASES,
    TIMESTAMPS,
)
from kronos_synth.data.validation import ValidationReport, require_rows, validate_klines

__all__ = [
    "read_klines",
    "inspect_klines",
    "to_klines",
    "validate_klines",
    "require_rows",
    "file_stem",
]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_FEATHER_SUFFIXES = (".feather",)
KLINE_SUFFIXES = _CSV_SUFFIXES + _PARQUET_SUFFIXES + _FEATHER_SUFFIXES


#: column order of headerless K-line exports (many vendors): time, O, H, L, C[, volume[, amount]]
HEADERLESS_COLUMNS = ("timestamps", "open", "high", "low", "close", "volume", "amount")
#: MetaTrader 4 history exports keep the date and the time of day in two columns: date, time, O, H, L, C, volume
HEADERLESS_SPLIT_COLUMNS = ("date", "time", "open", "high", "low", "close", "volume", "amount")
SPLIT_TIME = "time of day"  # `_map_columns` key of a separate time-of-day column
_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _csv_layout(path: str) -> tuple[str, tuple[str, ...] | None]:
    """(separator, column names of a headerless file, or None when the first line is a header). Tab for .tsv
    files and for files whose first line has tabs but no commas (MetaTrader exports), semicolon when the first
    line has semicolons but no commas (European exports). No header when the first line is a bar: a date
    followed by 4 to 6 numbers, or a date, a time of day and 4 to 6 numbers (MetaTrader 4)."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return ",", None
    sep = "\t" if path.lower().endswith(".tsv") or ("\t" in first and "," not in first) else \
        ";" if ";" in first and "," not in first else ","
    cells = [c.strip() for c in first.split(sep)]
    split = len(cells) > 1 and bool(_TIME_OF_DAY.match(cells[1]))
    columns = HEADERLESS_SPLIT_COLUMNS if split else HEADERLESS_COLUMNS
    numbers = cells[2:] if split else cells[1:]
    if not 4 <= len(numbers) <= len(columns) - (2 if split else 1):
        return sep, None
    try:
        [float(c) for c in numbers]
        pd.Timestamp(f"{cells[0]} {cells[1]}" if split else cells[0])
    except ValueError:
        return sep, None
    return sep, columns


def file_stem(path: str) -> str:
    """File name without folder and K-line suffix: `data/BTCUSDT_15m.csv.gz` → `BTCUSDT_15m`."""
    name = os.path.basename(path)
    for suffix in sorted(KLINE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def _read_raw(path: str) -> pd.DataFrame:
    """The file as pandas reads it, with every IO/format problem turned into one KlineDataError."""
    lower = path.lower()
    if not os.path.exists(path):
        raise KlineDataError("file not found", file=path, hint="check the path")
    if os.path.isdir(path):
        raise KlineDataError("is a folder, not a file", file=path, hint="pass a file or a glob like 'dir/*.csv'")
    if os.path.getsize(path) == 0:
        raise KlineDataError("file is empty", file=path)
    try:
        if lower.endswith(_PARQUET_SUFFIXES):
            raw = pd.read_parquet(path)
            if not isinstance(raw.index, pd.RangeIndex):
                # A frame saved with a DatetimeIndex keeps its dates in the index.
                raw = raw.reset_index()
            return raw
        if lower.endswith(_FEATHER_SUFFIXES):
            return pd.read_feather(path)
        if lower.endswith(_CSV_SUFFIXES):
            sep, columns = _csv_layout(path)
            if columns is None:
                return pd.read_csv(path, sep=sep)
            split = columns is HEADERLESS_SPLIT_COLUMNS  # keep "00:00" and "2019.04.17" as text
            raw = pd.read_csv(path, sep=sep, header=None, dtype={0: str, 1: str} if split else None)
            return raw.set_axis(list(columns[: raw.shape[1]]), axis=1)
    except pd.errors.EmptyDataError:
        raise KlineDataError("file is empty", file=path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError, zipfile.BadZipFile) as e:
        kind = ("Parquet" if lower.endswith(_PARQUET_SUFFIXES) else
                "Feather" if lower.endswith(_FEATHER_SUFFIXES) else "CSV")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KlineDataError(f"cannot read as {kind}: {first}", file=path, hint="is the file corrupt?") from None
    except Exception as e:  # pyarrow raises its own types (ArrowInvalid, …)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KlineDataError(f"cannot read file: {first}", file=path, hint="is the file corrupt?") from None
    raise KlineDataError(
        "unknown file type", file=path, hint="use .csv, .tsv, .csv.gz, .parquet or .feather"
    )


def _map_columns(raw: pd.DataFrame, file: str | None) -> dict[str, str]:
    """canonical name → raw column name, from case-insensitive aliases."""
    by_lower: dict[str, str] = {}
    for col in raw.columns:  # MetaTrader 5 exports name their columns <DATE>, <TIME>, <OPEN>, …, <TICKVOL>
        by_lower.setdefault(str(col).strip().strip("<>").strip().lower(), col)
    mapping: dict[str, str] = {}
    for alias in TIMESTAMP_ALIASES:
        if alias in by_lower:
            mapping[TIMESTAMPS] = by_lower[alias]
            break
    else:
        # backtesting-style CSVs keep dates in an unnamed first (index) column.
        first = raw.columns[0] if len(raw.columns) else None
        name = str(first).strip().lower() if first is not None else ""
        if first is not None and (name == "" or name.startswith("unnamed") or name == "index"):
            mapping[TIMESTAMPS] = first
    for canon, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_lower:
                mapping[canon] = by_lower[alias]
                break
    # FX exports carry tick volume beside a real volume that is all zero (MetaTrader 5's <VOL>): take the ticks.
    tick = next((by_lower[a] for a in TICK_VOLUME_ALIASES if a in by_lower), None)
    if tick is not None:
        chosen = mapping.get("volume")
        if chosen is None or (pd.to_numeric(raw[chosen], errors="coerce").fillna(0) == 0).all():
            mapping["volume"] = tick
    # A date column with the time of day in a column of its own (MetaTrader): both make the timestamp.
    if TIMESTAMPS in mapping and "time" in by_lower and by_lower["time"] != mapping[TIMESTAMPS]:
        times = raw[by_lower["time"]].astype("string").str.strip()
        if times.notna().all() and times.str.fullmatch(_TIME_OF_DAY.pattern).all():
            mapping[SPLIT_TIME] = by_lower["time"]
    return mapping


#: a UTC offset (or Z / UTC / GMT) right after a time of day: `… 09:30:00+02:00`, `…T09:30Z`, `… 09:30 +0200`
_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"


def _check_one_offset(text: pd.Series, file: str | None, column: str) -> None:
    """One file, one clock. Timestamps that carry an offset are converted to UTC. Local time with daylight
    saving carries two offsets one hour apart (`-05:00` in winter, `-04:00` in summer), which is one clock
    and accepted; any other mix (`+00:00` here and `+02:00` there, or some rows with no offset at all) is
    refused, naming the first row that breaks the file's clock."""
    found = text.str.strip().str.extract(_OFFSET, expand=False)
    if found.isna().all():
        return
    norm = found.fillna("").str.upper().replace({"Z": "+00:00", "UTC": "+00:00", "GMT": "+00:00"})
    norm = norm.str.replace(r"^([+-]\d{2})(\d{2})$", r"\1:\2", regex=True)
    norm = norm.str.replace(r"^([+-]\d{2})$", r"\1:00", regex=True)
    present = text.notna().to_numpy()
    v = norm.to_numpy(dtype=object)
    first = int(np.flatnonzero(present)[0])

    def minutes(o: str) -> int | None:
        return None if not o else (1 if o[0] == "+" else -1) * (int(o[1:3]) * 60 + int(o[4:6]))

    ref = minutes(v[first])
    mins = np.array([minutes(o) if p else ref for o, p in zip(v, present, strict=True)], dtype=object)
    if ref is None:
        differs = present & (v != v[first])
    else:  # the reference offset, or one hour either side of it — but only one of the two sides
        off = np.array([m is None or abs(m - ref) not in (0, 60) for m in mins])
        shifted = sorted({m for m in mins if m is not None and m != ref})
        if len(shifted) > 1:
            off |= np.array([m == shifted[1] for m in mins])
        differs = present & off
    if differs.any():
        row = int(np.flatnonzero(differs)[0])

        def name(o: str) -> str:
            return f"offset {o}" if o else "no offset"

        raise KlineDataError(
            f"timestamp {text.iloc[row]!r} has {name(v[row])} but row {first} has {name(v[first])}: the file mixes "
            "timezone offsets", file=file, column=column, row=row,
            hint="write every timestamp with one offset (convert to UTC; local time with daylight saving has two)",
        )


def _parse_timestamps(values: pd.Series, file: str | None, column: str) -> pd.Series:
    """datetime64[ns], tz-naive (UTC wall time when the source carried a zone)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_numeric_dtype(values):
        # Epoch numbers: pick the unit from the magnitude (Binance uses milliseconds).
        v = pd.to_numeric(values, errors="coerce")
        mag = float(np.nanmedian(np.abs(v.to_numpy(dtype=np.float64)))) if v.notna().any() else 0.0
        unit = "ns" if mag > 1e17 else "us" if mag > 1e14 else "ms" if mag > 1e11 else "s"
        ts = pd.to_datetime(v, unit=unit, errors="coerce")
    else:
        text = values.astype("string")
        _check_one_offset(text, file, column)
        ts = pd.to_datetime(text, utc=True, errors="coerce")
        bad = ts.isna() & text.notna()
        if bad.any():  # the format was inferred from the first row; retry row by row
            ts = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        ts = ts.dt.tz_localize(None)
    ts = ts.astype("datetime64[ns]")
    bad = ts.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise KlineDataError(
            f"cannot parse timestamp {values.iloc[row]!r}", file=file, column=column, row=row,
            hint="use ISO dates like 2024-01-31 or 2024-01-31 09:30:00",
        )
    return ts.reset_index(drop=True)


def _to_float(values: pd.Series, file: str | None, column: str) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise KlineDataError(
            f"not a number: {values.iloc[row]!r}", file=file, column=column, row=row,
            hint="remove text or thousands separators from numeric columns",
        )
    return num.to_numpy(dtype=np.float64)


def _klines_and_report(
    raw: pd.DataFrame, *, file: str | None, strict: bool, symbol: str | None
) -> tuple[pd.DataFrame, ValidationReport]:
    if len(raw) == 0:
        raise KlineDataError("no data rows", file=file, hint="the file has only a header")
    cols = _map_columns(raw, file)
    missing = [c for c in (TIMESTAMPS, *PRICE_COLUMNS) if c not in cols]
    if missing:
        found = ", ".join(str(c) for c in raw.columns) or "none"
        raise KlineDataError(
            f"required column missing (found: {found})",
            file=file,
            column=missing[0],
            hint="need timestamps (or timestamp/date/datetime/time or an unnamed date index), "
            "open, high, low, close",
        )
    out: dict[str, object] = {}
    if SYMBOL in cols:
        sym = raw[cols[SYMBOL]]
        row = np.flatnonzero(sym.isna().to_numpy())
        if row.size:
            raise KlineDataError("symbol is missing", file=file, column=str(cols[SYMBOL]), row=int(row[0]))
        out[SYMBOL] = sym.astype(str).str.strip().to_numpy()
    else:
        out[SYMBOL] = np.full(len(raw), symbol if symbol is not None else (file_stem(file) if file else ""))
    stamps = raw[cols[TIMESTAMPS]]
    if SPLIT_TIME in cols:
        stamps = stamps.astype("string").str.strip() + " " + raw[cols[SPLIT_TIME]].astype("string").str.strip()
    out[TIMESTAMPS] = _parse_timestamps(stamps.reset_index(drop=True), file, str(cols[TIMESTAMPS]))
    for c in PRICE_COLUMNS:
        out[c] = _to_float(raw[cols[c]], file, str(cols[c]))
    # The reference rule: no volume → volume 0 (and amount 0 unless given);
    # volume without amount → amount = volume × mean(open, high, low, close).
    if "volume" in cols:
        out["volume"] = _to_float(raw[cols["volume"]], file, str(cols["volume"]))
    else:
        out["volume"] = np.zeros(len(raw))
    if "amount" in cols:
        out["amount"] = _to_float(raw[cols["amount"]], file, str(cols["amount"]))
    elif "volume" in cols:
        mean_price = (out["open"] + out["high"] + out["low"] + out["close"]) / 4.0
        out["amount"] = out["volume"] * mean_price
    else:
        out["amount"] = np.zeros(len(raw))
    df = pd.DataFrame(out, columns=list(KLINE_COLUMNS))
    # Validate in file order so row numbers are the file's data rows.
    try:
        report = validate_klines(df, file=file, strict=strict)
    except KlineDataError as e:
        if e.column in cols and str(cols[e.column]) != e.column:  # name the column as the file does
            raise KlineDataError(e.reason, file=file, column=str(cols[e.column]), row=e.row, hint=e.hint) from None
        raise
    df = df.sort_values(SYMBOL, kind="stable", ignore_index=True)
    df[SYMBOL] = df[SYMBOL].astype(str)
    df[list(FEATURES)] = df[list(FEATURES)].astype(np.float64)
    return df, report


def to_klines(
    raw: pd.DataFrame, *, file: str | None = None, strict: bool = False, symbol: str | None = None
) -> pd.DataFrame:
    """Turn any OHLCV DataFrame (aliases, DatetimeIndex, strings …) into a validated K-line frame.

    `symbol` names a single-asset frame that has no symbol column (default: file stem or "").
    """
    if not isinstance(raw.index, pd.RangeIndex):
        raw = raw.reset_index()
    return _klines_and_report(raw, file=file, strict=strict, symbol=symbol)[0]


def _expand(path: str) -> list[str]:
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path))
        if not files:
            raise KlineDataError("no file matches the pattern", file=path)
        return files
    return [path]


def inspect_klines(path: str, *, strict: bool = False) -> tuple[pd.DataFrame, list[ValidationReport]]:
    """`read_klines` plus the validation report of every file read."""
    frames, reports = [], []
    files = _expand(path)
    for f in files:
        df, report = _klines_and_report(_read_raw(f), file=f, strict=strict, symbol=None)
        frames.append(df)
        reports.append(report)
    if len(frames) == 1:
        return frames[0], reports
    seen: dict[str, str] = {}
    for f, df in zip(files, frames, strict=True):
        for s in df[SYMBOL].unique():
            if s in seen:
                raise KlineDataError(
                    f"symbol {s} also appears in {seen[s]}", file=f, column=SYMBOL,
                    hint="one file per symbol, or give each file its own symbol column",
                )
            seen[s] = f
    df = pd.concat(frames, ignore_index=True).sort_values(SYMBOL, kind="stable", ignore_index=True)
    return df, reports


def read_klines(path: str, *, strict: bool = False) -> pd.DataFrame:
    """Read one K-line file (CSV, TSV, CSV.gz, Parquet, Feather) or a glob of them into a validated K-line frame.

    A file without a `symbol` column gets symbol = file stem. Bad input raises `KlineDataError`
    naming file, column and first offending row.

    Example:
        >>> df = read_klines("BTCUSDT_15m.csv")  # doctest: +SKIP
    """
    return inspect_klines(path, strict=strict)[0]

