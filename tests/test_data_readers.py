from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from kronos_synth.data import (
    FEATURES,
    KLINE_COLUMNS,
    KlineDataError,
    KlineDataWarning,
    load_klines,
    read_klines,
    to_klines,
    validate_klines,
    write_klines,
)

ROWS = [
    ("2024-01-01", 10.0, 11.0, 9.0, 10.5, 100.0),
    ("2024-01-02", 10.5, 12.0, 10.0, 11.0, 120.0),
    ("2024-01-03", 11.0, 11.5, 10.2, 10.8, 90.0),
]


def write_csv(path, header: str, rows) -> str:
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


def check_contract(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == KLINE_COLUMNS
    assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0
    assert df["timestamps"].dtype == "datetime64[ns]"
    for col in FEATURES:
        assert df[col].dtype == np.float64
    assert df.sort_values(["symbol", "timestamps"]).index.equals(df.index)


@pytest.mark.parametrize("ts_name", ["timestamps", "Timestamp", "DATE", "datetime", " time "])
def test_timestamp_aliases_case_insensitive(tmp_path, ts_name):
    path = write_csv(tmp_path / "a.csv", f"{ts_name},Open,HIGH,low,Close,Volume", ROWS)
    df = read_klines(path)
    check_contract(df)
    assert list(df["timestamps"].dt.day) == [1, 2, 3]
    assert df["high"].tolist() == [11.0, 12.0, 11.5]


def test_unnamed_index_column_backtesting_style(tmp_path):
    path = write_csv(tmp_path / "GOOG.csv", ",Open,High,Low,Close,Volume", ROWS)
    df = read_klines(path)
    check_contract(df)
    assert df["timestamps"].iloc[-1] == pd.Timestamp("2024-01-03")
    assert set(df["symbol"]) == {"GOOG"}  # symbol = file stem


def test_amount_rule(tmp_path):
    # volume without amount → amount = volume × mean(o, h, l, c)
    df = read_klines(write_csv(tmp_path / "v.csv", "date,open,high,low,close,volume", ROWS))
    expected = [100 * (10 + 11 + 9 + 10.5) / 4, 120 * (10.5 + 12 + 10 + 11) / 4, 90 * (11 + 11.5 + 10.2 + 10.8) / 4]
    np.testing.assert_allclose(df["amount"], expected)
    # no volume → volume 0 and amount 0
    df = read_klines(write_csv(tmp_path / "nv.csv", "date,open,high,low,close", [r[:5] for r in ROWS]))
    assert (df["volume"] == 0).all() and (df["amount"] == 0).all()
    # both given → kept as is
    df = read_klines(write_csv(tmp_path / "va.csv", "date,open,high,low,close,volume,amount", [(*r, 7.0) for r in ROWS]))
    assert (df["amount"] == 7.0).all() and df["volume"].tolist() == [100.0, 120.0, 90.0]


def test_multi_symbol_file_interleaved(tmp_path):
    rows = []
    for d, o, h, lo, c, v in ROWS:
        rows.append(("BBB", d, o * 2, h * 2, lo * 2, c * 2, v))
        rows.append(("AAA", d, o, h, lo, c, v))
    df = read_klines(write_csv(tmp_path / "multi.csv", "symbol,timestamp,open,high,low,close,volume", rows))
    check_contract(df)
    assert df["symbol"].tolist() == ["AAA"] * 3 + ["BBB"] * 3
    assert df.loc[df.symbol == "BBB", "close"].tolist() == [21.0, 22.0, 21.6]


def test_multi_symbol_duplicate_is_per_symbol(tmp_path):
    # the same timestamp in two symbols is fine; twice in one symbol is not
    rows = [("A", "2024-01-01", 1, 1, 1, 1), ("B", "2024-01-01", 1, 1, 1, 1), ("A", "2024-01-01", 1, 1, 1, 1)]
    with pytest.raises(KlineDataError) as e:
        read_klines(write_csv(tmp_path / "dup.csv", "symbol,date,open,high,low,close", rows))
    assert e.value.row == 2 and e.value.column == "date" and "for symbol A" in str(e.value)


def test_parquet_and_csv_gz_round_trip(tmp_path):
    df = read_klines(write_csv(tmp_path / "x.csv", "date,open,high,low,close,volume", ROWS))
    for name in ("x.parquet", "x.csv.gz"):
        out = write_klines(df, str(tmp_path / name))
        back = read_klines(out)
        check_contract(back)
        pd.testing.assert_frame_equal(back, df)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_parquet_with_datetime_index_and_tz(tmp_path):
    idx = pd.date_range("2024-03-01 09:00", periods=3, freq="h", tz="America/New_York", name="Datetime")
    raw = pd.DataFrame({"Open": [1.0, 2, 3], "High": [2.0, 3, 4], "Low": [0.5, 1, 2], "Close": [1.5, 2.5, 3.5]}, index=idx)
    raw.to_parquet(tmp_path / "tz.parquet")
    df = read_klines(str(tmp_path / "tz.parquet"))
    check_contract(df)
    assert df["timestamps"].iloc[0] == pd.Timestamp("2024-03-01 14:00")  # UTC wall time, tz-naive


def test_utc_offset_strings_and_epoch_ms():
    raw = pd.DataFrame(
        {"timestamp": ["2025-04-03 17:15:00+00:00", "2025-04-03 17:30:00+02:00"], "open": [1.0, 1], "high": [1.0, 1],
         "low": [1.0, 1], "close": [1.0, 1]}
    )
    with pytest.raises(KlineDataError, match="row 1: .*mixes timezone offsets"):  # one file, one offset
        to_klines(raw)
    raw["timestamp"] = ["2025-04-03 17:15:00+02:00", "2025-04-03 17:30:00+02:00"]  # one offset: converted to UTC
    assert to_klines(raw)["timestamps"].tolist() == [pd.Timestamp("2025-04-03 15:15"), pd.Timestamp("2025-04-03 15:30")]
    raw["timestamp"] = [1743700500000, 1743701400000]  # Binance-style epoch milliseconds
    df = to_klines(raw, symbol="BTC")
    assert df["timestamps"].tolist() == [pd.Timestamp("2025-04-03 17:15"), pd.Timestamp("2025-04-03 17:30")]
    assert df["symbol"].tolist() == ["BTC", "BTC"]


def test_not_covering_warns_and_counts():
    with pytest.warns(KlineDataWarning):
        df = to_klines(pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "open": [1.0, 1.0],
                                     "high": [1.2, 1.1],
                                     "low": [0.9, 0.95], "close": [1.1, 1.15]}))
    with pytest.warns(KlineDataWarning, match="row 1"):
        report = validate_klines(df)
    assert report.ohlc_not_covering == 1 and report.first_not_covering_row == 1
    with pytest.raises(KlineDataError, match="do not cover"):
        validate_klines(df, strict=True)


def test_glob_reads_many_files_with_stem_symbols(tmp_path):
    write_csv(tmp_path / "AAA_1d.csv", "date,open,high,low,close", [r[:5] for r in ROWS])
    write_csv(tmp_path / "BBB_1d.csv", "date,open,high,low,close", [r[:5] for r in ROWS[:2]])
    df = read_klines(str(tmp_path / "*_1d.csv"))
    check_contract(df)
    assert df.groupby("symbol").size().to_dict() == {"AAA_1d": 3, "BBB_1d": 2}


def test_load_klines_path_or_dataset(tmp_path):
    path = write_csv(tmp_path / "p.csv", "date,open,high,low,close", [r[:5] for r in ROWS])
    assert len(load_klines(path)) == 3
    assert len(load_klines("goog-daily")) > 2000
    with pytest.raises(KlineDataError, match="embedded datasets: sp500-daily"):
        load_klines(str(tmp_path / "missing.csv"))


def test_crypto_file_reads_clean(crypto_dir):
    df = read_klines(os.path.join(crypto_dir, "BTCUSDT_15m.csv"))
    check_contract(df)
    assert len(df) == 8640 and (df["amount"] > 0).all()
    assert (df["timestamps"].diff().dropna() == pd.Timedelta("15min")).all()


def test_headerless_tab_and_feather_files_read_like_csv(tmp_path) -> None:
    """MetaTrader exports (no header, tab or comma), tab-separated .csv with a header, and Feather."""
    import pandas as pd

    from kronos_synth.data.readers import read_klines

    lines = ["2007-01-24 16:00\t0.92195\t0.92214\t0.92007\t0.92014\t73",
             "2007-01-24 20:00\t0.92030\t0.92160\t0.91957\t0.91968\t231"]
    (tmp_path / "AUDCAD240.csv").write_text("\n".join(lines) + "\n")
    df = read_klines(str(tmp_path / "AUDCAD240.csv"))
    assert list(df["close"]) == [0.92014, 0.91968] and list(df["volume"]) == [73.0, 231.0]
    assert df["timestamps"].iloc[1] == pd.Timestamp("2007-01-24 20:00")
    (tmp_path / "X_H4.csv").write_text("Time\tOpen\tHigh\tLow\tClose\tVolume\n" + "\n".join(lines) + "\n")
    assert read_klines(str(tmp_path / "X_H4.csv"))[["open", "close"]].equals(df[["open", "close"]])
    (tmp_path / "eu.csv").write_text("Date;Open;High;Low;Close;Volume\n" + "\n".join(
        x.replace("\t", ";") for x in lines) + "\n")  # semicolon-separated (European exports)
    assert read_klines(str(tmp_path / "eu.csv"))[["open", "close"]].equals(df[["open", "close"]])
    df.drop(columns="symbol").to_feather(tmp_path / "x.feather")
    back = read_klines(str(tmp_path / "x.feather"))
    assert back[["timestamps", "open", "high", "low", "close", "volume"]].equals(
        df[["timestamps", "open", "high", "low", "close", "volume"]])


def test_metatrader_exports_date_and_time_columns_and_tick_volume(tmp_path) -> None:
    """MetaTrader 4 history (no header, date and time of day in two columns), MetaTrader 5 (<DATE>, <TIME>,
    tick volume beside an all-zero <VOL>) and the MetaTrader 5 Python export (time, …, tick_volume,
    real_volume) read to the same bars; a real volume that is not all zero is kept."""
    bars = [("2019.04.17", "00:00", 0.71669, 0.71720, 0.71650, 0.71700, 1234),
            ("2019.04.17", "01:00", 0.71700, 0.71750, 0.71690, 0.71740, 1100),
            ("2019.04.17", "02:00", 0.71740, 0.71760, 0.71700, 0.71710, 900)]
    (tmp_path / "AUDUSD60.csv").write_text("\n".join(",".join(map(str, b)) for b in bars) + "\n")
    mt4 = read_klines(str(tmp_path / "AUDUSD60.csv"))
    check_contract(mt4)
    assert list(mt4["timestamps"]) == [pd.Timestamp("2019-04-17 00:00"), pd.Timestamp("2019-04-17 01:00"),
                                       pd.Timestamp("2019-04-17 02:00")]
    assert list(mt4["volume"]) == [1234.0, 1100.0, 900.0] and list(mt4["close"]) == [0.717, 0.7174, 0.7171]
    mt5 = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n" + "\n".join(
        "\t".join(map(str, (*b[:2], *b[2:], 0, 12))) for b in bars) + "\n"
    (tmp_path / "AUDUSD_mt5.csv").write_text(mt5)
    cols = ["timestamps", "open", "high", "low", "close", "volume"]
    assert read_klines(str(tmp_path / "AUDUSD_mt5.csv"))[cols].equals(mt4[cols])
    py = pd.DataFrame({"time": pd.to_datetime([f"2019-04-17 0{h}:00" for h in range(3)]),
                       **{c: [b[i + 2] for b in bars] for i, c in enumerate(["open", "high", "low", "close"])},
                       "tick_volume": [b[6] for b in bars], "spread": 12, "real_volume": 0})
    assert to_klines(py)[cols].equals(mt4[cols])
    stocks = py.rename(columns={"real_volume": "volume"}).assign(volume=[5.0, 6.0, 7.0])
    assert list(to_klines(stocks)["volume"]) == [5.0, 6.0, 7.0]  # a real volume wins over the ticks
