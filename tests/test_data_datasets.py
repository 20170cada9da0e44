from __future__ import annotations

import os

import pandas as pd
import pytest

from kronos_synth.cli import main
from kronos_synth.data import (
    KLINE_COLUMNS,
    KlineDataError,
    default_dataset_for,
    list_datasets,
    load_dataset,
    read_klines,
    validate_klines,
)

EXPECTED = {
    "sp500-daily": ("daily", 5031, "1999-01-04", "2018-12-31"),
    "nasdaq-daily": ("daily", 5031, "1999-01-04", "2018-12-31"),
    "goog-daily": ("daily", 2148, "2004-08-19", "2013-03-01"),
    "eurusd-1h": ("1h", 5000, "2017-04-19 09:00", "2018-02-07 15:00"),
    "crypto-15m": ("15min", 36326, "2024-03-01", "2024-09-06 04:30"),
}


def test_list_datasets():
    infos = {d.name: d for d in list_datasets()}
    assert len(infos) >= 4
    for name, (freq, rows, first, last) in EXPECTED.items():
        d = infos[name]
        assert (d.frequency, d.rows, d.first, d.last) == (freq, rows, pd.Timestamp(first), pd.Timestamp(last))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_dataset_loads_and_validates(name):
    df = load_dataset(name)
    assert tuple(df.columns) == KLINE_COLUMNS and df["timestamps"].dtype == "datetime64[ns]"
    report = validate_klines(df, strict=True)
    assert report.rows == EXPECTED[name][1]
    assert (df["amount"] > 0).mean() > 0.99  # volume given, amount by the reference rule
    # a copy: changing it does not change the cache
    df.loc[0, "close"] = -1.0
    assert load_dataset(name).loc[0, "close"] > 0


def test_default_dataset_and_unknown():
    assert default_dataset_for("1d") == "sp500-daily"
    assert default_dataset_for("60min") == "eurusd-1h"
    assert default_dataset_for("15min") == "crypto-15m"
    assert default_dataset_for("5min") is None
    with pytest.raises(KlineDataError, match="sp500-daily"):
        load_dataset("nope")


def test_cli_list_and_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["datasets", "list"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "eurusd-1h" in out and "5031" in out
    path = str(tmp_path / "goog.parquet")
    with pytest.raises(SystemExit) as e:
        main(["datasets", "export", "goog-daily", "--out", path])
    assert e.value.code == 0
    pd.testing.assert_frame_equal(read_klines(path), load_dataset("goog-daily"))
    assert os.listdir(tmp_path) == ["goog.parquet"]
    with pytest.raises(SystemExit) as e:
        main(["datasets", "show", "eurusd-1h", "--rows", "2"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "cleaning (1h)" in out and "EURUSD" in out
