"""Frequency presets: window lengths and cleaning thresholds per bar size, and frequency inference.

15min and daily follow the Kronos paper's generation settings (lookback 120 / horizon 96 with
TSTR windows (80, 16); lookback 96 / horizon 35 with TSTR windows (30, 5)). The other presets are
our documented defaults: horizons of about one natural cycle (a trading day or a week), a
lookback that fits comfortably in the 512-token context of Kronos-small/base.

Cleaning thresholds (see `cleaning.py`; the paper's exact Table 4 values were not available to
us, so these are our own defaults):
- `jump_threshold`: |log price change| between consecutive bars above which the series is split
  (a 2:1 unadjusted stock split is log 2 ≈ 0.69; crypto's largest 15-min moves are ≈ 0.1–0.2).
- `illiquid_run`: runs of at least this many zero-volume bars are removed.
- `stagnant_run`: runs of at least this many "frozen" bars (open = high = low = close = previous
  close) are removed.
- `min_segment_bars`: segments shorter than one generation window (lookback + horizon) are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.errors import InputError
from kronos_synth.data.schema import SYMBOL, TIMESTAMPS


@dataclass(frozen=True)
class FrequencyPreset:
    """Everything that depends on the bar size."""

    name: str
    timedelta: pd.Timedelta
    lookback: int
    horizon: int
    tstr_lookback: int
    tstr_horizon: int
    min_segment_bars: int
    jump_threshold: float
    illiquid_run: int
    stagnant_run: int

    @property
    def window(self) -> int:
        """lookback + horizon: one generation window (also the train/test gap)."""
        return self.lookback + self.horizon

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timedelta"] = str(self.timedelta)
        return d


def _preset(name, td, lookback, horizon, tstr, jump, illiquid, stagnant) -> FrequencyPreset:
    return FrequencyPreset(
        name=name,
        timedelta=pd.Timedelta(td),
        lookback=lookback,
        horizon=horizon,
        tstr_lookback=tstr[0],
        tstr_horizon=tstr[1],
        min_segment_bars=lookback + horizon,
        jump_threshold=jump,
        illiquid_run=illiquid,
        stagnant_run=stagnant,
    )


PRESETS: dict[str, FrequencyPreset] = {
    p.name: p
    for p in (
        _preset("1min", "1min", 240, 120, (80, 16), 0.15, 30, 30),
        _preset("5min", "5min", 144, 96, (80, 16), 0.20, 12, 12),
        _preset("15min", "15min", 120, 96, (80, 16), 0.25, 8, 8),
        _preset("30min", "30min", 120, 48, (80, 16), 0.30, 6, 6),
        _preset("1h", "1h", 120, 48, (60, 12), 0.30, 4, 5),
        _preset("4h", "4h", 120, 42, (60, 12), 0.40, 3, 4),
        _preset("daily", "1D", 96, 35, (30, 5), 0.50, 2, 3),
        _preset("weekly", "7D", 52, 13, (26, 4), 0.70, 2, 2),
    )
}

_ALIASES: dict[str, str] = {
    # minutes
    "1m": "1min", "1t": "1min", "1min": "1min", "min": "1min", "t": "1min", "1minute": "1min",
    "5m": "5min", "5t": "5min", "5min": "5min", "5minute": "5min",
    "15m": "15min", "15t": "15min", "15min": "15min", "15minute": "15min",
    "30m": "30min", "30t": "30min", "30min": "30min", "30minute": "30min",
    # hours
    "1h": "1h", "h": "1h", "60m": "1h", "60min": "1h", "60t": "1h", "1hour": "1h", "hourly": "1h",
    "4h": "4h", "240m": "4h", "240min": "4h", "4hour": "4h",
    # days / weeks
    "1d": "daily", "d": "daily", "day": "daily", "daily": "daily", "1day": "daily", "b": "daily",
    "1b": "daily", "bd": "daily",
    "1w": "weekly", "w": "weekly", "week": "weekly", "weekly": "weekly", "1week": "weekly",
    "w-fri": "weekly", "w-sun": "weekly", "w-mon": "weekly",
}


def get_preset(name: str | FrequencyPreset) -> FrequencyPreset:
    """Preset by name or alias (`15m`, `15T`, `1d`, `D`, `60min`, `H`, …); unknown → InputError."""
    if isinstance(name, FrequencyPreset):
        return name
    key = str(name).strip().lower().replace(" ", "")
    if key in _ALIASES:
        return PRESETS[_ALIASES[key]]
    raise InputError(
        f"unknown frequency '{name}' — valid: {', '.join(PRESETS)} (aliases like 15m, 15T, 1d, D, 60min, H)"
    )


def as_ns(timestamps: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """int64 nanoseconds since the epoch, whatever the datetime unit (pandas 3 often uses µs)."""
    return np.asarray(pd.DatetimeIndex(np.asarray(timestamps).ravel()).as_unit("ns").asi8)


def modal_step(timestamps: pd.Series | pd.DatetimeIndex | np.ndarray) -> pd.Timedelta | None:
    """Most common positive difference between consecutive timestamps (None if fewer than 2)."""
    t = as_ns(timestamps)
    if t.size < 2:
        return None
    d = np.diff(t)
    d = d[d > 0]
    if d.size == 0:
        return None
    values, counts = np.unique(d, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def preset_for_step(step: pd.Timedelta) -> FrequencyPreset | None:
    """The preset whose bar size equals `step` (daily also matches 1–3 day steps, weekly 5–8)."""
    for p in PRESETS.values():
        if p.timedelta == step:
            return p
    if pd.Timedelta("1D") <= step <= pd.Timedelta("3D"):
        return PRESETS["daily"]  # business-day data whose modal gap is not 1 day
    if pd.Timedelta("5D") <= step <= pd.Timedelta("8D"):
        return PRESETS["weekly"]
    return None


def infer_frequency(df: pd.DataFrame, *, target: str | None = None, label: str | None = None) -> FrequencyPreset:
    """The preset matching the modal bar spacing, counted over all symbols together.

    Daily data with weekend gaps has modal spacing 1 day and is `daily`. Raises InputError when the
    spacing matches no preset (pass the frequency explicitly, or resample). `target`: the frequency the
    caller already has (the data's bar size is only checked against it), so the messages do not ask for
    one; `label` names the data in them (a file or dataset name).
    """
    where = f"{label}: " if label else ""
    diffs = []
    groups = df.groupby(SYMBOL, sort=False)[TIMESTAMPS] if SYMBOL in df.columns else [(None, df[TIMESTAMPS])]
    for _, ts in groups:
        t = as_ns(ts)
        if t.size >= 2:
            d = np.diff(t)
            diffs.append(d[d > 0])
    if not diffs or sum(d.size for d in diffs) == 0:
        if target is not None:
            raise InputError(f"{where}needs at least 2 bars per symbol to tell its bar size (and check it against "
                             f"freq {target}) — pass a longer history")
        raise InputError(f"{where}cannot infer the frequency from fewer than 2 bars per symbol — pass freq",
                         param="freq")
    d = np.concatenate(diffs)
    values, counts = np.unique(d, return_counts=True)
    step = pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    preset = preset_for_step(step)
    if preset is None:
        if target is not None:
            raise InputError(f"{where}bar spacing {step} matches no frequency preset ({', '.join(PRESETS)}) — "
                             f"resample the data to a preset bar size first")
        raise InputError(
            f"{where}bar spacing {step} matches no frequency preset ({', '.join(PRESETS)}) — pass freq or resample",
            param="freq",
        )
    return preset
