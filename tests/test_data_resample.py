from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_synth.data import InputError, load_dataset, resample_klines


def bars(ts) -> pd.DataFrame:
    n = len(ts)
    x = np.arange(n, dtype=float) + 10
    return pd.DataFrame({"symbol": "X", "timestamps": pd.DatetimeIndex(ts).as_unit("ns"), "open": x,
                         "high": x + 2, "low": x - 1, "close": x + 1, "volume": np.ones(n), "amount": x})


def test_15min_to_1h_aggregation():
    df = bars(pd.date_range("2024-01-01 00:00", periods=8, freq="15min"))
    out = resample_klines(df, "1h")
    assert out["timestamps"].tolist() == [pd.Timestamp("2024-01-01 00:00"), pd.Timestamp("2024-01-01 01:00")]
    assert out["open"].tolist() == [10, 14] and out["close"].tolist() == [14, 18]
    assert out["high"].tolist() == [15, 19] and out["low"].tolist() == [9, 13]
    assert out["volume"].tolist() == [4, 4] and out["amount"].tolist() == [10 + 11 + 12 + 13, 14 + 15 + 16 + 17]


def test_stock_session_alignment_and_no_empty_bars():
    days = pd.bdate_range("2024-01-04", periods=3)  # Thu, Fri, Mon
    ts = np.concatenate([pd.date_range(d + pd.Timedelta("9h30min"), d + pd.Timedelta("15h55min"), freq="5min")
                         for d in days])
    out = resample_klines(bars(ts), "1h")
    times = sorted(set(out["timestamps"].dt.strftime("%H:%M")))
    assert times == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert len(out) == 7 * 3  # nothing on the weekend or at night
    assert out.groupby(out["timestamps"].dt.date)["volume"].sum().tolist() == [78.0] * 3


def test_daily_to_weekly_and_upsample_refused():
    sp = load_dataset("sp500-daily")
    wk = resample_klines(sp, "weekly")
    assert (wk["timestamps"].dt.day_of_week == 0).all()
    assert 1030 <= len(wk) <= 1045
    assert wk["volume"].sum() == pytest.approx(sp["volume"].sum())
    assert (wk["high"] >= wk[["open", "close"]].max(axis=1)).all()
    with pytest.raises(InputError, match="finer"):
        resample_klines(sp, "1h")
