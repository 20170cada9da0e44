"""Validate a K-line frame: every problem is named by file, column and first offending row."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kronos_synth.data.errors import KlineDataError
from kronos_synth.data.schema import PRICE_COLUMNS, SEGMENT, SYMBOL, TIMESTAMPS, VOLUME_COLUMNS


class KlineDataWarning(UserWarning):
    """A K-line problem that is tolerated unless `strict=True` (e.g. high/low not covering open/close)."""


@dataclass
class ValidationReport:
    """What `validate_klines` found in a frame that passed (fatal problems raise instead)."""

    file: str | None
    rows: int
    symbols: list[str]
    first: str | None
    last: str | None
    #: bars whose high is below max(open, close) or low above min(open, close)
    ohlc_not_covering: int = 0
    first_not_covering_row: int | None = None
    zero_volume_rows: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        name = self.file or "frame"
        lines = [
            f"{name}: {self.rows} rows, {len(self.symbols)} symbol(s) ({', '.join(self.symbols[:5])}"
            f"{', …' if len(self.symbols) > 5 else ''}), {self.first} .. {self.last}",
            f"bars with high/low not covering open/close: {self.ohlc_not_covering}",
            f"bars with zero volume: {self.zero_volume_rows}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _check_finite_positive(df: pd.DataFrame, col: str, file: str | None, *, allow_zero: bool) -> None:
    values = df[col].to_numpy(dtype=np.float64)
    row = _first(~np.isfinite(values))
    if row is not None:
        what = "missing (NaN)" if np.isnan(values[row]) else f"not finite ({values[row]})"
        raise KlineDataError(
            f"value is {what}", file=file, column=col, row=row, hint="fill or remove the bad rows"
        )
    bad = values < 0 if allow_zero else values <= 0
    row = _first(bad)
    if row is not None:
        need = "negative" if allow_zero else "not positive"
        raise KlineDataError(
            f"value {values[row]:g} is {need}",
            file=file,
            column=col,
            row=row,
            hint="prices must be > 0 and volume/amount >= 0",
        )


#: A price more than this factor away from the rolling median close around its bar is an error. Real markets
#: move at most ~100× between consecutive bars (crashes, redenominations) and the wildest flash-crash wicks
#: reach ~3 000× below the close; 10⁵ is far beyond both, and still catches unit mix-ups (cents, satoshis)
#: and junk like 1e308, which would otherwise overflow the normalisation of every window around it.
OUTLIER_FACTOR = 1e5
#: bars in the centred rolling window whose median close is the reference (per symbol, in file order)
OUTLIER_WINDOW = 21


def _check_price_outliers(df: pd.DataFrame, file: str | None) -> None:
    """Raise on the first bar (file order) with |log(price / m)| > log(`OUTLIER_FACTOR`) for any of
    open/high/low/close, where m is the median close of the `OUTLIER_WINDOW` bars centred on it (same symbol,
    file order; fewer at the ends). The median ignores a few bad bars, so the bar that is off is the one
    named; a symbol with fewer than 3 bars has no robust reference and only its bars' spread is checked.
    Prices must be finite and positive (checked before)."""
    n = len(df)
    symbols = df[SYMBOL].astype(str).to_numpy() if SYMBOL in df.columns else np.full(n, "")
    order = np.argsort(symbols, kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(symbols[order][1:] != symbols[order][:-1]) + 1, [n]])
    log_close = np.log(df["close"].to_numpy(dtype=np.float64)[order])
    ref = np.empty(n)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        ref[a:b] = pd.Series(log_close[a:b]).rolling(OUTLIER_WINDOW, center=True, min_periods=1).median()
    limit = np.log(OUTLIER_FACTOR)
    worst: tuple[int, int, str, float] | None = None
    for k, col in enumerate(PRICE_COLUMNS):
        dev = np.log(df[col].to_numpy(dtype=np.float64)[order]) - ref
        bad = np.flatnonzero(np.abs(dev) > limit)
        if bad.size:
            i = bad[np.argmin(order[bad])]  # first offending row in file order
            if worst is None or (order[i], k) < worst[:2]:
                worst = (int(order[i]), k, col, float(dev[i]))
    if worst is not None:
        row, _, col, dev = worst
        value, median = df[col].iloc[row], float(np.exp(ref[np.flatnonzero(order == row)[0]]))
        raise KlineDataError(
            f"value {value:g} is {np.exp(abs(dev)):.3g}× {'above' if dev > 0 else 'below'} the median close "
            f"{median:g} of the bars around it — an outlier no market makes (limit {OUTLIER_FACTOR:g}×)",
            file=file, column=col, row=row, hint="fix or remove the bar (a wrong unit or a corrupt value?)",
        )


def validate_klines(df: pd.DataFrame, *, file: str | None = None, strict: bool = False) -> ValidationReport:
    """Check a frame with canonical column names; raise `KlineDataError` on the first fatal problem.

    Row numbers in messages are 0-based positions in `df` (data rows of the file when `df` is in
    file order). Fatal: empty, missing price/timestamp column, NaN/inf or non-positive prices,
    NaN/inf/negative volume or amount, high < low, bad or duplicate or unsorted timestamps per
    symbol, absurd price outliers (`OUTLIER_FACTOR`, `_check_price_outliers`). Tolerated and counted
    (fatal with `strict=True`): high/low not covering open/close.
    """
    if len(df) == 0:
        raise KlineDataError("no data rows", file=file, hint="the file is empty or has only a header")
    missing = [c for c in (TIMESTAMPS, *PRICE_COLUMNS) if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise KlineDataError(
            f"required column missing (found: {found})",
            file=file,
            column=missing[0],
            hint="need timestamps (or timestamp/date/datetime/time), open, high, low, close",
        )
    for col in PRICE_COLUMNS:
        _check_finite_positive(df, col, file, allow_zero=False)
    _check_price_outliers(df, file)
    for col in VOLUME_COLUMNS:
        if col in df.columns:
            _check_finite_positive(df, col, file, allow_zero=True)

    o, h, lo, c = (df[k].to_numpy(dtype=np.float64) for k in PRICE_COLUMNS)
    row = _first(h < lo)
    if row is not None:
        raise KlineDataError(
            f"high {h[row]:g} is below low {lo[row]:g}", file=file, column="high", row=row,
            hint="check the column order or fix the bar",
        )

    ts = df[TIMESTAMPS]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise KlineDataError(
            f"timestamps have dtype {ts.dtype}, not datetime64", file=file, column=TIMESTAMPS,
            hint="build the frame with kronos_synth.data.to_klines or read_klines",
        )
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)
    row = _first(ts.isna().to_numpy())
    if row is not None:
        raise KlineDataError("timestamp is missing", file=file, column=TIMESTAMPS, row=row)
    symbols = df[SYMBOL].astype(str).to_numpy() if SYMBOL in df.columns else np.full(len(df), "")
    tsv = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    # Compare each row with the previous row of the same symbol (file order is kept per symbol).
    order = np.argsort(symbols, kind="stable")
    s_sorted, t_sorted = symbols[order], tsv[order]
    same = s_sorted[1:] == s_sorted[:-1]
    dup = same & (t_sorted[1:] == t_sorted[:-1])
    back = same & (t_sorted[1:] < t_sorted[:-1])
    problems = [
        (int(order[1:][mask].min()), what, hint)
        for mask, what, hint in (
            (dup, "duplicate timestamp", "remove or aggregate the duplicated bars"),
            (back, "timestamps not sorted (earlier than the previous bar)", "sort the file by time"),
        )
        if mask.any()
    ]
    if problems:
        row, what, hint = min(problems)
        label = f"{what} {pd.Timestamp(tsv[row])}"
        if len(set(symbols.tolist())) > 1:
            label += f" for symbol {symbols[row]}"
        raise KlineDataError(label, file=file, column=TIMESTAMPS, row=row, hint=hint)

    not_cover = (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
    n_bad = int(not_cover.sum())
    first_bad = _first(not_cover)
    report = ValidationReport(
        file=file,
        rows=len(df),
        symbols=sorted(set(symbols.tolist())),
        first=str(pd.Timestamp(tsv.min())),
        last=str(pd.Timestamp(tsv.max())),
        ohlc_not_covering=n_bad,
        first_not_covering_row=first_bad,
        zero_volume_rows=int((df["volume"].to_numpy() == 0).sum()) if "volume" in df.columns else 0,
    )
    if n_bad:
        col = "high" if h[first_bad] < max(o[first_bad], c[first_bad]) else "low"
        err = KlineDataError(
            f"{n_bad} bar(s) where high/low do not cover open/close",
            file=file,
            column=col,
            row=first_bad,
            hint="fix the bars or run without strict to accept them" if strict else "counted, not fixed",
            param="strict" if strict else None,
        )
        if strict:
            raise err
        report.warnings.append(str(err))
        warnings.warn(str(err), KlineDataWarning, stacklevel=2)
    return report


def require_rows(df: pd.DataFrame, n: int, *, file: str | None = None, what: str = "window") -> None:
    """Raise `KlineDataError` unless some symbol (and segment, if present) has at least `n` rows."""
    keys = [k for k in (SYMBOL, SEGMENT) if k in df.columns]
    longest = int(df.groupby(keys, sort=False).size().max()) if keys and len(df) else len(df)
    if longest < n:
        unit = "rows" if SEGMENT not in df.columns else "rows in one segment"
        raise KlineDataError(
            f"too few rows: the longest series has {longest} {unit} but the {what} needs {n}",
            file=file,
            hint="use a longer history or a shorter window",
        )
