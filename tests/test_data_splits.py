from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_synth.data import FEATURES, InputError, KlineDataError, extract_windows, split_by_time


def two_symbols(n_a=300, n_b=200) -> pd.DataFrame:
    parts = []
    for sym, n, shift in (("A", n_a, 0), ("B", n_b, 7)):
        ts = pd.date_range("2024-01-01", periods=n, freq="1h").as_unit("ns") + pd.Timedelta(minutes=shift)
        x = np.arange(n, dtype=float) + 1
        parts.append(pd.DataFrame({"symbol": sym, "timestamps": ts, "open": x, "high": x + 1, "low": x,
                                   "close": x + 0.5, "volume": x * 10, "amount": x * 100}))
    return pd.concat(parts, ignore_index=True)


def test_split_is_chronological_per_symbol_with_gap():
    df = two_symbols()
    L = 24
    train, test = split_by_time(df, test_fraction=0.2, gap=L)
    for sym, n in (("A", 300), ("B", 200)):
        tr, te = train[train.symbol == sym], test[test.symbol == sym]
        assert len(te) == round(n * 0.2) and len(tr) == n - len(te) - L
        assert tr.timestamps.max() < te.timestamps.min()
        gap_bars = df[(df.symbol == sym) & (df.timestamps > tr.timestamps.max()) & (df.timestamps < te.timestamps.min())]
        assert len(gap_bars) == L
    assert isinstance(train.index, pd.RangeIndex) and list(train.columns) == list(df.columns)


def test_no_test_window_overlaps_any_train_window():
    df = two_symbols()
    L = 24
    train, test = split_by_time(df, gap=L)
    wtr, wte = extract_windows(train, L), extract_windows(test, L)
    for sym in ("A", "B"):
        tr_ts = wtr.timestamps[wtr.symbols == sym]
        te_ts = wte.timestamps[wte.symbols == sym]
        assert len(tr_ts) and len(te_ts)
        assert tr_ts.max() < te_ts.min()
        # and the distance is more than one window of bars
        assert (te_ts.min() - tr_ts.max()) > np.timedelta64(L, "h")
        assert not set(tr_ts.ravel().tolist()) & set(te_ts.ravel().tolist())


def test_windows_shape_order_and_starts():
    df = two_symbols(30, 20)
    w = extract_windows(df, 10, stride=5)
    # A: starts 0,5,10,15,20 ; B (rows 30..49): 30,35,40
    assert w.starts.tolist() == [0, 5, 10, 15, 20, 30, 35, 40]
    assert w.values.shape == (8, 10, len(FEATURES)) and w.values.dtype == np.float64
    assert w.timestamps.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(w.values[1, :, FEATURES.index("close")], np.arange(6, 16) + 0.5)
    np.testing.assert_array_equal(w.values[1, :, FEATURES.index("amount")], np.arange(6, 16) * 100.0)
    assert w.symbols.tolist() == ["A"] * 5 + ["B"] * 3
    assert len(w.take(np.array([0, 7]))) == 2


def test_windows_never_cross_symbol_or_segment():
    df = two_symbols(30, 20)
    df["segment"] = 0
    df.loc[12:29, "segment"] = 1  # A splits at row 12
    w = extract_windows(df, 10)
    rows = w.starts[:, None] + np.arange(10)
    seg = df["segment"].to_numpy()[rows]
    sym = df["symbol"].to_numpy()[rows]
    assert (seg == seg[:, :1]).all() and (sym == sym[:, :1]).all()
    # A segment 0 has 12 rows → 3 windows; segment 1 has 18 → 9; B has 20 → 11
    assert len(w) == 3 + 9 + 11


def test_split_bad_arguments():
    df = two_symbols(30, 20)
    with pytest.raises(InputError):
        split_by_time(df, test_fraction=1.5, gap=1)
    with pytest.raises(KlineDataError, match="too few rows"):
        split_by_time(df, gap=100)
    with pytest.raises(InputError):
        extract_windows(df, 0)
