"""Aggregate K-lines to a coarser bar size (never finer), per symbol, on the source's sessions.

Bars are grouped into bins and aggregated open=first, high=max, low=min, close=last,
volume=sum, amount=sum; only bins that contain source bars exist, so nights and weekends stay
empty. Bins:
- intraday targets: fixed-width bins aligned to the usual session open (the modal first bar time
  of a day, modulo the target), e.g. 9:30-aligned hours for US stocks, :00 hours for crypto;
  labelled with the bin start. `offset` shifts that origin by a multiple of the source step
  (5-minute bars → 15-minute bars starting at :05, :20, …): another phase of the same market.
- daily: one bar per calendar date (label = the date at 00:00).
- weekly: one bar per Monday-anchored week (label = that Monday at 00:00).
A bin at the edge of a session or of the data may hold fewer source bars than a full one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset, modal_step
from kronos_synth.data.schema import KLINE_COLUMNS, SEGMENT, SYMBOL, TIMESTAMPS

_DAY = pd.Timedelta("1D").value
_MONDAY0 = pd.Timestamp("1970-01-05").value


def _bin_keys(t: np.ndarray, target: FrequencyPreset, offset: int = 0) -> np.ndarray:
    step = int(target.timedelta.value)
    if target.name == "weekly":
        return t - (t - _MONDAY0) % (7 * _DAY)
    if step >= _DAY:
        return t - t % _DAY
    day = t - t % _DAY
    first_of_day = pd.Series(t).groupby(day).min().to_numpy()
    tod = first_of_day % _DAY
    values, counts = np.unique(tod, return_counts=True)
    origin = (int(values[np.argmax(counts)]) + offset) % step
    return t - (t - origin) % step


def _check_offset(offset: pd.Timedelta, target: FrequencyPreset, source: pd.Timedelta | None) -> int:
    """The offset in ns, or InputError: intraday targets only, 0 <= offset < target, a multiple of the source step."""
    try:
        off = pd.Timedelta(offset)
    except (TypeError, ValueError) as e:
        raise InputError(f"resampling offset {offset!r} is not a time span (e.g. '5min')") from e
    ok = target.timedelta < pd.Timedelta("1D") and pd.Timedelta(0) <= off < target.timedelta
    if ok and source is not None:
        ok = off.value % source.value == 0
    if not ok:
        src = f"{source}" if source is not None else "the source step"
        raise InputError(
            f"resampling offset {off} is not valid for {target.name} bars — it must be a multiple of {src} "
            f"in [0, {target.timedelta}) and the target intraday"
        )
    return int(off.value)


def resample_klines(
    df: pd.DataFrame, freq: str | FrequencyPreset, *, offset: pd.Timedelta | str | None = None
) -> pd.DataFrame:
    """Resample a K-line frame to `freq` (e.g. 15min → 1h, daily → weekly); upsampling is refused.

    `offset` (intraday targets): shift the bins' origin by this multiple of the source step, less than
    one target bar; None and 0 give the session-aligned bins."""
    target = get_preset(freq)
    if len(df) == 0:
        return df.copy()
    steps = [s for _, ts in df.groupby(SYMBOL, sort=False)[TIMESTAMPS] if (s := modal_step(ts)) is not None]
    source = min(steps) if steps else None
    if source is not None and target.timedelta < source:
        raise InputError(
            f"cannot resample bars of {source} to the finer frequency {target.name} ({target.timedelta}) — "
            "only aggregation to coarser bars is supported"
        )
    shift = 0 if offset is None else _check_offset(offset, target, source)
    if source is not None and target.timedelta == source:
        return df.copy()
    t = df[TIMESTAMPS].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keys = [SYMBOL] + ([SEGMENT] if SEGMENT in df.columns else [])
    work = df[keys + ["open", "high", "low", "close", "volume", "amount"]].copy()
    parts = []
    for _, idx in work.groupby(SYMBOL, sort=False).indices.items():
        sub = work.iloc[idx].copy()
        sub["_bin"] = _bin_keys(t[idx], target, shift)
        agg = sub.groupby(keys + ["_bin"], sort=False).agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
            amount=("amount", "sum"),
        )
        parts.append(agg.reset_index())
    out = pd.concat(parts, ignore_index=True)
    out[TIMESTAMPS] = out.pop("_bin").to_numpy().astype("datetime64[ns]")
    out = out.sort_values([SYMBOL, TIMESTAMPS], kind="stable", ignore_index=True)
    cols = list(KLINE_COLUMNS) + ([SEGMENT] if SEGMENT in df.columns else [])
    return out[cols]
