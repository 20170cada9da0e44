"""One constructed series per cleaning rule, asserting exactly which rows go and where splits fall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_synth.data import clean_klines, load_dataset

# Small thresholds so the constructed cases stay short.
TH = dict(jump_threshold=0.3, illiquid_run=3, stagnant_run=3, min_segment_bars=4)


def frame(close, volume=None, symbol="X", flat=()) -> pd.DataFrame:
    """Bars with open = previous close, high/low 1 % around; rows in `flat` are frozen bars."""
    close = np.asarray(close, dtype=float)
    n = close.size
    opn = np.r_[close[0], close[:-1]]
    high = np.maximum(opn, close) * 1.01
    low = np.minimum(opn, close) * 0.99
    for i in flat:  # o = h = l = c = previous close
        opn[i] = high[i] = low[i] = close[i] = close[i - 1]
    vol = np.full(n, 10.0) if volume is None else np.asarray(volume, dtype=float)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timestamps": pd.date_range("2024-01-01", periods=n, freq="15min").as_unit("ns"),
            "open": opn, "high": high, "low": low, "close": close,
            "volume": vol, "amount": vol * close,
        }
    )


def walk(n, seed=0):
    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))


def accounted(res, n):
    r = res.report
    assert r.rows_in == n
    assert r.rows_out + sum(r.removed.values()) == n == len(res.frame) + len(res.removed)


def test_illiquid_run_removed_and_splits():
    vol = np.full(20, 10.0)
    vol[8:11] = 0  # a run of 3 → removed
    vol[15] = 0  # a single zero-volume bar → kept
    res = clean_klines(frame(walk(20), vol), "15min", **TH)
    assert res.removed["row"].tolist() == [8, 9, 10]
    assert set(res.removed["reason"]) == {"illiquid"}
    assert res.report.removed["illiquid"] == 3
    # segments: rows 0-7 and 11-19
    assert res.frame["segment"].tolist() == [0] * 8 + [1] * 9
    accounted(res, 20)


def test_volume_free_symbol_is_exempt():
    res = clean_klines(frame(walk(10), np.zeros(10)), "15min", **TH)
    assert len(res.frame) == 10 and res.report.removed["illiquid"] == 0
    assert any("no volume" in n for n in res.report.notes)


def test_stagnant_run_removed():
    res = clean_klines(frame(walk(16), flat=[5, 6, 7, 12, 13]), "15min", **TH)
    # run 5-7 (3 frozen bars) goes; run 12-13 (2 bars) stays
    assert res.removed["row"].tolist() == [5, 6, 7]
    assert set(res.removed["reason"]) == {"stagnant"}
    assert res.frame["segment"].tolist() == [0] * 5 + [1] * 8
    accounted(res, 16)


def test_price_jump_splits_without_removing():
    close = walk(12)
    close[6:] *= 2.0  # a 2:1 unadjusted split between rows 5 and 6
    res = clean_klines(frame(close), "15min", **TH)
    assert len(res.removed) == 0
    assert res.report.splits["price_jump"] == 1
    ev = [e for e in res.report.events if e.rule == "price_jump"]
    assert [e.first_row for e in ev] == [6]
    assert res.frame["segment"].tolist() == [0] * 6 + [1] * 6


def test_single_bad_tick_becomes_short_segment():
    close = walk(14)
    close[7] *= 10  # spike up and back: two jumps isolate row 7
    res = clean_klines(frame(close), "15min", **TH)
    assert res.removed["row"].tolist() == [7]
    assert res.removed["reason"].tolist() == ["short_segment"]
    assert res.report.splits["price_jump"] == 2
    assert res.frame["segment"].tolist() == [0] * 7 + [1] * 6


def test_short_segments_removed():
    vol = np.full(15, 10.0)
    vol[3:6] = 0  # rows 0-2 become a 3-bar segment (< 4) → removed too
    res = clean_klines(frame(walk(15), vol), "15min", **TH)
    assert res.removed["row"].tolist() == [0, 1, 2, 3, 4, 5]
    assert res.removed["reason"].tolist() == ["short_segment"] * 3 + ["illiquid"] * 3
    assert res.report.removed == {"illiquid": 3, "stagnant": 0, "price_jump": 0, "short_segment": 3}
    assert res.frame["segment"].tolist() == [0] * 9
    accounted(res, 15)


def test_segments_per_symbol_and_input_segments_respected():
    a, b = frame(walk(10, 1), symbol="A"), frame(walk(10, 2), symbol="B")
    b["close"] = b["close"] * 5  # jump between symbols must not count
    b["open"], b["high"], b["low"] = b["open"] * 5, b["high"] * 5, b["low"] * 5
    df = pd.concat([a, b], ignore_index=True)
    df["segment"] = [0] * 5 + [1] * 5 + [0] * 10
    res = clean_klines(df, "15min", **TH)
    assert res.report.splits["price_jump"] == 0
    assert res.frame["segment"].tolist() == [0] * 5 + [1] * 5 + [0] * 10
    assert res.report.segments == 3


def test_report_summary_and_dict():
    vol = np.full(20, 10.0)
    vol[8:11] = 0
    res = clean_klines(frame(walk(20), vol), "15min", **TH)
    d = res.report.to_dict()
    assert d["removed"]["illiquid"] == 3 and d["events"][0]["rule"] == "illiquid"
    assert "kept 17 of 20 rows" in res.report.summary()


@pytest.mark.parametrize("name", ["sp500-daily", "eurusd-1h"])
def test_real_datasets_clean_with_defaults(name):
    df = load_dataset(name)
    res = clean_klines(df)
    accounted(res, len(df))
    assert res.report.rows_out > 0.95 * len(df)


def test_open_at_previous_close_only_where_the_context_never_gaps():
    from kronos_synth.data.bar_validity import bar_validity, open_at_previous_close

    close = np.array([10.0, 10.5, 10.2, 10.8])
    gapless = np.stack([np.r_[10.0, close[:-1]], close + 0.3, np.minimum(np.r_[10.0, close[:-1]], close) - 0.3,
                        close, np.ones(4), close], axis=-1)
    gapped = gapless.copy()
    gapped[2, 0] += 0.05
    gen = np.array([[[10.9, 11.2, 10.7, 11.0, 1, 11.0], [11.05, 11.1, 10.95, 11.05, 1, 11.0]]])
    out = open_at_previous_close(np.concatenate([gen, gen]), np.stack([gapless, gapped]))
    np.testing.assert_array_equal(out[0, :, 0], [10.8, 11.0])  # context's last close, then the bar before
    np.testing.assert_array_equal(out[0, :, 3], gen[0, :, 3])
    assert out[0, 1, 2] == 10.95 and out[0, 1, 1] == 11.1  # the new open 11.0 is inside: unchanged range
    assert out[0, 0, 2] == 10.7 and out[0, 0, 1] == 11.2
    np.testing.assert_array_equal(out[1], gen[0])  # a context with one gap: the model's opens stay
    assert bar_validity(out).invalid_bars == 0
