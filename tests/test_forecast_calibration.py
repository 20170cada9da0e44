"""Calibration of conditional paths: the scores, the reference forecasters, Kronos's paths and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kronos_synth.data.frequency import get_preset
from kronos_synth.data.splits import Windows
from kronos_synth.metrics.forecast_calibration import (
    BootstrapForecaster,
    CalibrationInputError,
    GarchForecaster,
    calibration_windows,
    choose_spread,
    crps_ensemble,
    evaluate_calibration,
    interval_coverage,
    pit_values,
    score_paths,
)
from tests._sim import garch_returns
from tests._tiny import save_tiny_model


def test_crps_matches_the_pairwise_definition_and_the_gaussian_closed_form(rng):
    x, y = rng.normal(size=(5, 7)), rng.normal(size=5)
    brute = np.abs(x - y[:, None]).mean(1) - 0.5 * np.abs(x[:, :, None] - x[:, None, :]).mean((1, 2))
    np.testing.assert_allclose(crps_ensemble(x, y), brute, rtol=1e-12)
    # CRPS(N(0, 1), 0) = 2φ(0) − 1/√π = 0.2337
    big = rng.normal(size=(1, 200_000))
    assert crps_ensemble(big, np.zeros(1))[0] == pytest.approx(2 * sps.norm.pdf(0) - 1 / np.sqrt(np.pi), abs=3e-3)
    # a sharper forecast centred on the truth scores better; one centred off it scores worse
    assert crps_ensemble(0.5 * big, np.zeros(1))[0] < crps_ensemble(big, np.zeros(1))[0] < \
        crps_ensemble(big + 2, np.zeros(1))[0]


def test_calibrated_ensemble_has_uniform_pit_and_nominal_coverage(rng):
    k, m = 3000, 100
    samples, y = rng.normal(size=(k, m)), rng.normal(size=k)
    pit = pit_values(samples, y, rng)
    assert sps.kstest(pit, "uniform").statistic < 0.04
    assert interval_coverage(samples, y, 0.9)[0] == pytest.approx(0.9, abs=0.03)
    assert interval_coverage(samples, y, 0.5)[0] == pytest.approx(0.5, abs=0.03)
    # paths half as wide as the truth: covered P(|Z| < 1.645 / 2) = 0.59 of the time, PIT piles at 0 and 1
    narrow = 0.5 * samples
    assert interval_coverage(narrow, y, 0.9)[0] == pytest.approx(0.59, abs=0.04)
    assert sps.kstest(pit_values(narrow, y, rng), "uniform").statistic > 0.15


def test_pit_randomizes_ties():
    samples = np.zeros((4000, 10))  # every sample equals the outcome: PIT must still be uniform
    pit = pit_values(samples, np.zeros(4000), np.random.default_rng(0))
    assert sps.kstest(pit, "uniform").statistic < 0.03


def _windows(r: np.ndarray, start="2020-01-01") -> Windows:
    close = 100 * np.exp(np.cumsum(r, axis=1))
    bars = np.repeat(close[..., None], 6, axis=2)
    ts = np.tile(pd.date_range(start, periods=r.shape[1], freq="D").to_numpy(), (len(r), 1))
    return Windows(bars, ts, np.array(["A"] * len(r)), np.zeros(len(r), np.int64))


def test_score_paths_rewards_the_true_model(rng):
    """Outcomes and paths from the same random walk are calibrated; the too-narrow one is not."""
    k, m, lb, h = 400, 60, 20, 10
    w = _windows(rng.normal(0, 0.01, (k, lb + h)))
    last, real = w.values[:, lb - 1, 3], w.values[:, lb:, 3]
    good = last[:, None, None] * np.exp(np.cumsum(rng.normal(0, 0.01, (k, m, h)), axis=2))
    bad = last[:, None, None] * np.exp(np.cumsum(rng.normal(0, 0.004, (k, m, h)), axis=2))
    rows = {r.generator: r for r in score_paths("good", good, last, real, [h], 0) +
            score_paths("bad", bad, last, real, [h], 0) if r.target == "return"}
    assert rows["good"].coverage_90 == pytest.approx(0.9, abs=0.05)
    assert rows["bad"].coverage_90 < 0.6
    assert rows["good"].crps < rows["bad"].crps and rows["good"].pit_ks < rows["bad"].pit_ks
    assert sum(rows["good"].pit_hist) == pytest.approx(1.0)


def _garch_frame(n=3000, seed=0) -> pd.DataFrame:
    r = garch_returns(1, n, np.random.default_rng(seed), omega=2e-6, alpha=0.08, beta=0.9)[0]
    close = 100 * np.exp(np.cumsum(r))
    ts = pd.date_range("2000-01-03", periods=n, freq="B")
    return pd.DataFrame({"timestamps": ts, "symbol": "SIM", "open": np.r_[100, close[:-1]],
                         "high": np.maximum(np.r_[100, close[:-1]], close) * 1.001,
                         "low": np.minimum(np.r_[100, close[:-1]], close) * 0.999, "close": close,
                         "volume": 1e6, "amount": 1e6 * close})


def _vol_blocks_frame(log_vol_sd: float, n=4000, block=20, seed=0) -> pd.DataFrame:
    """Daily bars whose volatility jumps every `block` bars (log-normal, sd `log_vol_sd`) around 1 %."""
    rng = np.random.default_rng(seed)
    vol = 0.01 * np.exp(np.repeat(rng.normal(0, log_vol_sd, n // block + 1), block)[:n])
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1, n) * vol))
    return pd.DataFrame({"timestamps": pd.date_range("2000-01-03", periods=n, freq="B"), "symbol": "SIM",
                         "open": np.r_[100, close[:-1]], "high": np.maximum(np.r_[100, close[:-1]], close) * 1.001,
                         "low": np.minimum(np.r_[100, close[:-1]], close) * 0.999, "close": close,
                         "volume": 1e6, "amount": 1e6 * close})


def _scaled_walk(spread: float):
    """A forecaster whose paths are 1 %-volatility random walks, each path's volatility scaled by
    exp(spread·z − spread²/2): what a per-path temperature does to a model of the right average volatility."""
    def forecast(windows, lookback, samples, seed):
        rng = np.random.default_rng(seed)
        k, h = len(windows), windows.length - lookback
        scale = np.exp(spread * rng.standard_normal((k, samples, 1)) - spread ** 2 / 2)
        r = 0.01 * scale * rng.standard_normal((k, samples, h))
        return windows.values[:, lookback - 1, 3][:, None, None] * np.exp(np.cumsum(r, axis=2))
    return forecast


def test_spread_choice_follows_the_volatility_of_volatility_of_the_validation_period():
    """Where volatility jumps from block to block the chosen spread is wide; where it is constant, 0 or the smallest step — each
    on validation contexts only (the test period is never looked at)."""
    common = dict(freq="daily", lookback=20, horizon=20, n_contexts=60, samples=50, seed=3)
    wild = choose_spread(_vol_blocks_frame(0.5), _scaled_walk, **common)
    calm = choose_spread(_vol_blocks_frame(0.0), _scaled_walk, **common)
    assert wild.spread >= 0.3 and calm.spread <= 0.15
    assert [r["spread"] for r in wild.rows] == [0.0, 0.15, 0.3, 0.45, 0.6] and wild.n_contexts == 60
    wide = {r["spread"]: r["vol_coverage_90"] for r in wild.rows}
    assert wide[0.0] < 0.8 and wide[wild.spread] > wide[0.0]  # a single volatility covers too little
    assert wild.line().startswith(f"temperature spread {wild.spread:g}: lowest realised-volatility CRPS on 60")
    # the test period is not read: changing it changes nothing
    frame = _vol_blocks_frame(0.5)
    frame.loc[frame.index[-500:], "close"] *= 1.5
    assert choose_spread(frame, _scaled_walk, **common).rows == wild.rows
    with pytest.raises(CalibrationInputError):
        choose_spread(frame, _scaled_walk, grid=[-0.1, 0.2], **common)


def test_references_are_calibrated_on_garch_data():
    """On a simulated GARCH market the fitted GARCH forecaster covers ≈ 90 %; deterministic per seed."""
    frame = _garch_frame(4000)
    res = evaluate_calibration(frame, {}, freq="daily", lookback=60, horizon=10, n_contexts=300, samples=60, seed=1)
    g = res.row("garch", "return", 10)
    assert 0.82 <= g.coverage_90 <= 0.97 and g.pit_ks < 0.15
    assert res.row("bootstrap", "return", 1).coverage_90 > 0.75
    assert {r.horizon for r in res.rows} == {1, 5, 10}
    again = evaluate_calibration(frame, {}, freq="daily", lookback=60, horizon=10, n_contexts=300, samples=60, seed=1)
    assert json.dumps(res.to_dict(), default=str) == json.dumps(again.to_dict(), default=str)


def test_bootstrap_paths_reuse_the_context_returns(rng):
    w = _windows(rng.normal(0, 0.01, (3, 40)))
    paths = BootstrapForecaster(block=4)(w, 30, 8, seed=0)
    assert paths.shape == (3, 8, 10)
    ctx_r = np.diff(np.log(w.values[:, :30, 3]), axis=1)
    lr = np.diff(np.log(np.concatenate([np.repeat(w.values[:, None, 29:30, 3], 8, 1), paths], 2)), axis=2)
    for k in range(3):
        assert np.isin(lr[k].round(12), ctx_r[k].round(12)).all()


def test_too_short_test_period_is_an_input_error():
    with pytest.raises(CalibrationInputError, match="lookback"):
        evaluate_calibration(_garch_frame(300), {}, freq="daily", lookback=80, horizon=10, samples=10)
    with pytest.raises(CalibrationInputError, match="samples"):
        evaluate_calibration(_garch_frame(300), {}, freq="daily", lookback=20, horizon=10, samples=1)
    with pytest.raises(CalibrationInputError, match="horizons"):
        evaluate_calibration(_garch_frame(600), {}, freq="daily", lookback=20, horizon=10, horizons=[20])
    with pytest.raises(CalibrationInputError, match="GARCH needs"):
        GarchForecaster(_garch_frame(60))




@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_kronos_paths_do_not_depend_on_the_batch_size(tiny_model):
    from kronos_synth.generate.conditional import KronosForecaster
    from kronos_synth.model.pretrained import load_model_pair

    frame = _garch_frame(600)
    pair = load_model_pair(tiny_model)
    w = calibration_windows(frame, get_preset("daily"), 30, 8, n_contexts=3)
    a = KronosForecaster(pair, freq="daily", batch_size=5, dtype="fp32", device="cpu")(w.windows, 30, 4, seed=2)
    b = KronosForecaster(pair, freq="daily", batch_size=64, dtype="fp32", device="cpu")(w.windows, 30, 4, seed=2)
    c = KronosForecaster(pair, freq="daily", batch_size=64, dtype="fp32", device="cpu")(w.windows, 30, 4, seed=3)
    assert a.shape == (3, 4, 8) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all() and (a > 0).all()
    # the samples of one context differ from each other (sampling, not a copy)
    assert np.unique(a[0, :, -1]).size > 1


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kronos_synth.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd),
                                        "OMP_NUM_THREADS": "1"})


def test_cli_writes_the_report(tiny_model, tmp_path):
    frame = _garch_frame(700)
    frame.to_csv(tmp_path / "sim.csv", index=False)
    out = tmp_path / "calib"
    r = _cli("evaluate", "calibration", "--real", str(tmp_path / "sim.csv"), "--freq", "daily", "--model",
             tiny_model, "--lookback", "30", "--horizon", "8", "--contexts", "4", "--samples", "6",
             "--dtype", "fp32", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "report.json").read_text())
    assert set(doc["generators"]) == {"kronos", "garch", "bootstrap"}
    assert {(x["target"], x["horizon"]) for x in doc["rows"]} == {("return", 1), ("return", 5), ("return", 8),
                                                                  ("realized_vol", 5), ("realized_vol", 8)}
    assert "coverage 90 %" in (out / "report.md").read_text() and (out / "calibration.png").stat().st_size > 0


@pytest.mark.parametrize("extra, needle", [
    (["--generators", "kronos,arima"], "--generators"),
    (["--horizons", "1,x"], "--horizons"),
    (["--horizons", "1,50"], "--horizons"),
    (["--lookback", "500"], "--lookback"),
])
def test_cli_bad_input_exits_2_with_one_line(tiny_model, tmp_path, extra, needle):
    _garch_frame(700).to_csv(tmp_path / "sim.csv", index=False)
    r = _cli("evaluate", "calibration", "--real", str(tmp_path / "sim.csv"), "--freq", "daily", "--model", tiny_model,
             "--horizon", "8", "--samples", "4", "--contexts", "3", "--out", str(tmp_path / "o"), *extra, cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr and needle in lines[0], r.stderr
    assert not (tmp_path / "o").exists()
