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


def test_phase_offset_bins_equal_a_manual_aggregation_of_the_5min_bars():
    rng = np.random.default_rng(3)
    ts = pd.date_range("2024-01-01 00:00", periods=36, freq="5min")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 36)))
    open_ = np.append(100.0, close[:-1])
    df = pd.DataFrame({"symbol": "X", "timestamps": ts.as_unit("ns"), "open": open_,
                       "high": np.maximum(open_, close) * 1.002, "low": np.minimum(open_, close) * 0.998,
                       "close": close, "volume": rng.uniform(1, 5, 36), "amount": rng.uniform(100, 500, 36)})
    out = resample_klines(df, "15min", offset=pd.Timedelta("10min"))
    # bins start at :10, :25, :40, :55; the first (23:55 the day before) holds 00:00 and 00:05 only
    assert (out["timestamps"].dt.minute % 15 == 10).all() and out["timestamps"].iloc[0] == pd.Timestamp("2023-12-31 23:55")
    assert len(out) == 13
    for _, bar in out.iterrows():
        src = df[(df["timestamps"] >= bar["timestamps"]) & (df["timestamps"] < bar["timestamps"] + pd.Timedelta("15min"))]
        assert bar["open"] == src["open"].iloc[0] and bar["close"] == src["close"].iloc[-1]
        assert bar["high"] == src["high"].max() and bar["low"] == src["low"].min()
        assert bar["volume"] == pytest.approx(src["volume"].sum()) and bar["amount"] == pytest.approx(src["amount"].sum())
    pd.testing.assert_frame_equal(resample_klines(df, "15min", offset="0min"), resample_klines(df, "15min"))


@pytest.mark.parametrize("freq, offset", [("15min", "7min"), ("15min", "15min"), ("15min", "-5min"),
                                          ("daily", "1h"), ("15min", "soon")])
def test_bad_phase_offset_is_one_input_error(freq, offset):
    df = bars(pd.date_range("2024-01-01 00:00", periods=12, freq="5min"))
    with pytest.raises(InputError, match="offset"):
        resample_klines(df, freq, offset=offset)
