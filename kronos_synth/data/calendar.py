"""Future timestamps that continue a source's trading calendar.

A `SessionCalendar` is a set of allowed bar times within a week (offsets from Monday 00:00) plus
the bar step. It is learned from history:
- history of two weeks or more: every weekly slot seen in at least `min_share` of the weeks
  (crypto → all 7 × 24 h; stocks → the session's bar times on weekdays; FX → Sunday evening to
  Friday evening). Rare one-off bars are ignored. Exchange holidays are not modelled.
- shorter history: observed times of day (the whole day if the history spans less than one day)
  on Monday–Friday, or on every day if the history contains a weekend bar.
- weekly bars: one slot per week at the usual weekday and time.
Daily data without weekend bars therefore continues on business days (Mon–Fri).

Fit once per source and call `.next(last, n)` (or `.next_many`) for thousands of contexts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import as_ns, get_preset, modal_step

_DAY = 86_400 * 10**9
_WEEK = 7 * _DAY
_MONDAY0 = pd.Timestamp("1970-01-05").value  # a Monday 00:00, the anchor of weekly offsets


def _week_offsets(t: np.ndarray) -> np.ndarray:
    return (t - _MONDAY0) % _WEEK


@dataclass(frozen=True, eq=False)
class SessionCalendar:
    """Allowed bar times within a week, learned from history; `.next` continues it."""

    step: pd.Timedelta
    slots: np.ndarray  # sorted unique int64 offsets (ns) from Monday 00:00, all < one week
    kind: str  # how the slots were learned, for reports

    @classmethod
    def fit(
        cls,
        timestamps: pd.Series | pd.DatetimeIndex | np.ndarray,
        freq: str | None = None,
        *,
        min_share: float = 0.1,
    ) -> SessionCalendar:
        t = np.unique(as_ns(timestamps))
        if t.size == 0:
            raise InputError("cannot learn a calendar from no timestamps")
        step = get_preset(freq).timedelta if freq is not None else modal_step(t)
        if step is None:
            raise InputError("cannot infer the bar frequency from a single timestamp — pass freq")
        step_ns = int(step.value)
        if step_ns > _WEEK:
            raise InputError(f"bar step {step} is longer than a week; calendars support up to weekly bars")
        offsets = _week_offsets(t)
        span = int(t[-1] - t[0])
        if step_ns > 6 * _DAY:
            values, counts = np.unique(offsets, return_counts=True)
            return cls(step, np.array([values[np.argmax(counts)]], dtype=np.int64), "weekly")
        if span >= 2 * _WEEK:
            values, counts = np.unique(offsets, return_counts=True)
            weeks = span / _WEEK
            keep = counts >= max(1.0, min_share * weeks)
            return cls(step, values[keep].astype(np.int64), "weekly slots learned from history")
        # Short history: times of day × weekdays.
        if span >= _DAY or step_ns >= _DAY:
            tods = np.unique(offsets % _DAY)
        else:
            tods = np.arange(t[0] % step_ns, _DAY, step_ns, dtype=np.int64)
        weekdays = np.unique(offsets // _DAY)
        days = np.arange(7) if (weekdays >= 5).any() else np.arange(5)
        slots = (days[:, None] * _DAY + tods[None, :]).ravel()
        kind = "every day" if days.size == 7 else "Monday-Friday"
        return cls(step, np.unique(slots).astype(np.int64), f"short history: {kind}, observed times of day")

    def next(self, last: pd.Timestamp | np.datetime64 | str, n: int) -> pd.DatetimeIndex:
        """The `n` allowed bar times strictly after `last`."""
        return pd.DatetimeIndex(self.next_many(np.array([pd.Timestamp(last).as_unit("ns")]), n)[0])

    def next_many(self, last: np.ndarray, n: int) -> np.ndarray:
        """(k, n) datetime64[ns]: for each of k last timestamps, the next n allowed bar times."""
        last_ns = as_ns(last)
        m = self.slots.size
        off = _week_offsets(last_ns)
        base = last_ns - off
        pos = np.searchsorted(self.slots, off, side="right")
        idx = pos[:, None] + np.arange(n)[None, :]
        out = base[:, None] + (idx // m) * _WEEK + self.slots[idx % m]
        return out.astype("datetime64[ns]")


def future_timestamps(
    history_timestamps: pd.Series | pd.DatetimeIndex | np.ndarray, n: int, freq: str | None = None
) -> pd.DatetimeIndex:
    """`n` timestamps after the last one in history, continuing its calendar (see module doc)."""
    cal = SessionCalendar.fit(history_timestamps, freq)
    last = pd.DatetimeIndex(history_timestamps).max()
    return cal.next(last, n)
