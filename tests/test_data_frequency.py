from __future__ import annotations

import pandas as pd
import pytest

from kronos_synth.data import PRESETS, InputError, get_preset, infer_frequency, load_dataset


@pytest.mark.parametrize(
    "alias,name",
    [("15m", "15min"), ("15T", "15min"), ("1d", "daily"), ("D", "daily"), ("60min", "1h"), ("H", "1h"),
     ("5min", "5min"), ("1W", "weekly"), ("4h", "4h"), ("1min", "1min"), ("30m", "30min")],
)
def test_aliases(alias, name):
    assert get_preset(alias).name == name


def test_unknown_lists_valid_names():
    with pytest.raises(InputError, match="1min, 5min, 15min, 30min, 1h, 4h, daily, weekly"):
        get_preset("3min")


def test_paper_presets_and_windows_fit_context():
    p15, pd_ = PRESETS["15min"], PRESETS["daily"]
    assert (p15.lookback, p15.horizon, p15.tstr_lookback, p15.tstr_horizon) == (120, 96, 80, 16)
    assert (pd_.lookback, pd_.horizon, pd_.tstr_lookback, pd_.tstr_horizon) == (96, 35, 30, 5)
    for p in PRESETS.values():
        assert p.window <= 512 and p.min_segment_bars == p.window


def test_infer_frequency():
    assert infer_frequency(load_dataset("sp500-daily")).name == "daily"  # weekend gaps
    assert infer_frequency(load_dataset("eurusd-1h")).name == "1h"
    df = pd.DataFrame({"symbol": "X", "timestamps": pd.date_range("2024-01-01", periods=50, freq="15min")})
    assert infer_frequency(df).name == "15min"
    df = pd.DataFrame({"symbol": "X", "timestamps": pd.date_range("2024-01-01", periods=50, freq="7min")})
    with pytest.raises(InputError, match="matches no frequency preset"):
        infer_frequency(df)
