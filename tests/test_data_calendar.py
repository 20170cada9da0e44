from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_synth.data import SessionCalendar, future_timestamps, load_dataset


def stock_15min(days: int) -> np.ndarray:
    sessions = pd.bdate_range("2024-01-01", periods=days)
    return np.concatenate(
        [pd.date_range(d + pd.Timedelta("9h30min"), d + pd.Timedelta("15h45min"), freq="15min") for d in sessions]
    )


def test_daily_business_days_skip_weekends():
    hist = pd.bdate_range("2024-01-01", "2024-03-01")  # ends on a Friday
    fut = future_timestamps(hist, 6)
    assert fut[0] == pd.Timestamp("2024-03-04")  # Monday
    assert all(d.day_of_week < 5 for d in fut)
    assert list(fut) == list(pd.bdate_range("2024-03-04", periods=6))


def test_daily_short_history_and_real_dataset():
    fut = future_timestamps(pd.bdate_range("2024-01-01", periods=5), 3)  # Mon..Fri
    assert list(fut) == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-09"), pd.Timestamp("2024-01-10")]
    sp = load_dataset("sp500-daily")
    fut = future_timestamps(sp["timestamps"], 10)
    assert fut[0] > sp["timestamps"].iloc[-1] and all(d.day_of_week < 5 for d in fut)


def test_stock_intraday_skips_nights_and_weekends():
    ts = stock_15min(20)  # last bar Fri 2024-01-26 15:45
    fut = future_timestamps(ts, 30, freq="15min")
    assert fut[0] == pd.Timestamp("2024-01-29 09:30")  # next Monday's open
    assert fut[25] == pd.Timestamp("2024-01-29 15:45") and fut[26] == pd.Timestamp("2024-01-30 09:30")
    tod = fut.hour * 60 + fut.minute
    assert ((tod >= 9 * 60 + 30) & (tod <= 15 * 60 + 45)).all() and (fut.day_of_week < 5).all()
    # a short context (a few sessions) continues the same way
    assert list(future_timestamps(ts[-120:], 30, freq="15min")) == list(fut)


def test_crypto_is_24_7():
    ts = pd.date_range("2024-01-01", "2024-01-31 23:45", freq="15min")
    fut = future_timestamps(ts, 200)
    assert list(fut) == list(pd.date_range("2024-02-01", periods=200, freq="15min"))
    assert (fut.day_of_week >= 5).any()


def test_rare_off_session_bar_is_ignored():
    ts = stock_15min(60)  # 12 weeks
    odd = np.datetime64("2024-02-07T18:00", "ns")
    ts = np.sort(np.append(ts.astype("datetime64[ns]"), odd))
    fut = future_timestamps(ts, 60, freq="15min")
    assert not (fut.hour >= 16).any()


def test_fx_week():
    eu = load_dataset("eurusd-1h")
    cal = SessionCalendar.fit(eu["timestamps"])
    fut = cal.next(pd.Timestamp("2018-02-09 20:00"), 3)  # a Friday evening
    assert fut[1].day_of_week == 6  # next bars after the weekend open on Sunday evening
    assert not (fut.day_of_week == 5).any()


def test_weekly_and_next_many_matches_next():
    hist = pd.date_range("2023-01-06", periods=30, freq="W-FRI")
    fut = future_timestamps(hist, 4)
    assert list(fut) == list(pd.date_range(hist[-1] + pd.Timedelta("7D"), periods=4, freq="7D"))
    cal = SessionCalendar.fit(stock_15min(15))
    lasts = np.array(["2024-01-03 12:00", "2024-01-05 15:45", "2024-01-06 10:00"], dtype="datetime64[ns]")
    many = cal.next_many(lasts, 40)
    for i, last in enumerate(lasts):
        one = cal.next(last, 40)
        assert list(one) == list(pd.DatetimeIndex(many[i]))
        assert one[0] > pd.Timestamp(last) and one.is_monotonic_increasing and one.is_unique
