"""The stocks-timegan protocol: the published windowing, scaling and column mapping, and a quick run."""

import json

import numpy as np
import pandas as pd
import pytest

from evaluation.run import run_protocol
from evaluation.stocks_timegan import (
    STOCK_COLUMNS,
    published_features,
    reference_windows,
    scaled,
    stock_klines,
)


def _stock_file(path, n=420, seed=0):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = np.r_[100, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, n)))
    vol = np.exp(rng.normal(15, 0.4, n)).round()
    frame = pd.DataFrame(dict(zip(STOCK_COLUMNS, (open_, high, low, close, close, vol), strict=True)))
    frame.to_csv(path, index=False)
    return frame


def test_reference_windows_follow_the_reference_loop():
    rows = np.arange(30 * 2, dtype=float).reshape(30, 2)
    w = reference_windows(rows, 24)
    assert w.shape == (6, 24, 2)  # range(0, 30 − 24): the last possible window is left out, as in TimeGAN
    assert np.array_equal(w[0], rows[:24]) and np.array_equal(w[-1], rows[5:29])


def test_scaling_mapping_and_order(tmp_path):
    raw = _stock_file(tmp_path / "s.csv", n=60)
    values = raw.to_numpy()
    lo, hi = values.min(0), values.max(0)
    real = scaled(reference_windows(values, 24), lo, hi, "forward")
    assert real.min() >= 0 and real.max() < 1 and real.max() > 0.999
    back = scaled(reference_windows(values, 24), lo, hi, "reversed")
    assert np.array_equal(back, real[:, ::-1])
    k = stock_klines(raw)
    assert (k["timestamps"].dt.day_of_week < 5).all() and str(k["timestamps"][0].date()) == "2004-08-19"
    np.testing.assert_allclose(k["amount"], raw["Volume"] * raw[["Open", "High", "Low", "Close"]].mean(axis=1))
    bars = k[["open", "high", "low", "close", "volume", "amount"]].to_numpy()[None]
    # the generators' OHLCVA back in the published order: Adj_Close = Close, Volume last (the predictive target)
    np.testing.assert_allclose(published_features(bars)[0], values)


@pytest.mark.slow
def test_quick_protocol_reports_measured_beside_published(tmp_path):
    _stock_file(tmp_path / "stock_data.csv", n=1400)
    out = tmp_path / "out"
    log: list[str] = []
    assert run_protocol("stocks-timegan", quick=True, data_dir=str(tmp_path), out=str(out), jobs=1, threads=1,
                        echo=log.append) == out
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["measured"]) == {"kronos", "timegan", "timevae", "diffusion-ts", "garch", "bootstrap", "real"}
    for m in rep["measured"].values():
        assert len(m["discriminative"]["values"]) == 2 and 0 <= m["discriminative"]["mean"] <= 0.5
        assert m["predictive"]["mean"] > 0 and m["n_real"] == 1400 - 24
    assert rep["data"]["adj_close_equals_close"] and rep["data"]["windows"] == 1376
    md = (out / "report.md").read_text()
    assert "Diffusion-TS (Yuan & Qiao, ICLR 2024) — published | 0.067 ± 0.015 | 0.036 ± 0.000" in md
    # a rerun skips every finished stage
    log.clear()
    run_protocol("stocks-timegan", quick=True, data_dir=str(tmp_path), out=str(out), jobs=1, threads=1,
                 echo=log.append)
    assert not any(line.endswith(": running") for line in log)
