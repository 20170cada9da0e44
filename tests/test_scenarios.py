"""Conditioned generation (`--condition`, `--scenario stress`): parsing, the real windows meeting a condition,
rejection with deterministic candidate ids, hit rate and metadata, the scenario report, bad conditions."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from kronos_synth.data.conditions import (
    conditioned_windows,
    parse_condition,
    path_statistics,
)
from kronos_synth.data.errors import InputError
from kronos_synth.data.sources import klines_for
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.generator import Generator
from kronos_synth.metrics.scenario import es_ratio_interval, scenario_report, var_es
from kronos_synth.model.pretrained import load_model_pair
from tests._tiny import save_tiny_model

L, H = 32, 8


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return load_model_pair(save_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def sp500():
    return klines_for("daily", "sp500-daily")


@pytest.mark.parametrize("text, stat, low, high, level", [
    ("volatility:0.9-1", "volatility", 0.9, 1.0, None),
    ("vol: 0.2 - 0.4", "volatility", 0.2, 0.4, None),
    ("trend:0-0.1", "return", 0.0, 0.1, None),
    ("drawdown:0.1", "drawdown", 0.0, 1.0, 0.1),
    ("drawdown:15%", "drawdown", 0.0, 1.0, 0.15),
    ("regime:high-vol", "context-volatility", 0.9, 1.0, None),
    ("regime:bear", "context-return", 0.0, 0.1, None),
])
def test_parse_condition(text, stat, low, high, level):
    c = parse_condition(text)
    assert (c.stat, c.low, c.high) == (stat, low, high)
    assert c.level == pytest.approx(level) if level else c.level is None
    assert c.on_path == (stat in ("volatility", "return", "drawdown"))


@pytest.mark.parametrize("text, words", [
    ("volatility:0.9-0.5", "empty or outside"), ("volatility:0.5-1.5", "empty or outside"),
    ("drawdown:1.5", "between 0 and 1"), ("regime:sideways", "unknown regime"), ("skew:0-1", "unknown statistic"),
    ("volatility", "expected STAT:VALUE"),
])
def test_bad_conditions_are_one_clear_error(text, words):
    with pytest.raises(InputError, match=words):
        parse_condition(text)


def test_path_statistics_values():
    bars = np.zeros((1, 3, 6))
    bars[0, :, 3] = [110.0, 88.0, 99.0]
    st = path_statistics(np.array([100.0]), bars)
    assert st["return"][0] == pytest.approx(-0.01)
    assert st["drawdown"][0] == pytest.approx(0.2)  # 110 → 88
    assert st["volatility"][0] == pytest.approx(np.diff(np.log([100, 110, 88, 99])).std())


def test_quantile_band_selects_that_share_of_real_windows(sp500):
    klines, src = sp500
    cw = conditioned_windows(klines, "daily", L, H, parse_condition("volatility:0.9-1"), source=src)
    assert cw.mask.mean() == pytest.approx(0.1, abs=0.01)
    vol = path_statistics(cw.windows.values[:, L - 1, 3], cw.windows.values[:, L:])["volatility"]
    assert vol[cw.mask].min() >= np.quantile(vol, 0.9) - 1e-12
    assert cw.continuations().shape == (cw.mask.sum(), H, 6)


def test_impossible_drawdown_names_the_largest(sp500):
    klines, src = sp500
    with pytest.raises(InputError, match="no real window .* meets it .*largest drawdown"):
        conditioned_windows(klines, "daily", L, H, parse_condition("drawdown:0.95"), source=src)


def _run(pair, klines, src, out, *, batch_size, condition="volatility:0.8-1", n=24, **kw):
    cfg = GenerationConfig(freq="daily", lookback=L, horizon=H, condition=condition, samples_per_context=2,
                           batch_size=batch_size, dtype="fp32", max_tries=6, seed=1, **kw)
    torch.manual_seed(0)
    return Generator(pair, klines, cfg, source=src).write(str(out), n, progress=False)


def test_conditioned_run_reports_hits_and_is_batch_invariant(pair, sp500, tmp_path):
    klines, src = sp500
    a = _run(pair, klines, src, tmp_path / "a", batch_size=5)
    b = _run(pair, klines, src, tmp_path / "b", batch_size=24)
    assert a.candidates >= a.generated == 24 and 0 <= a.hits <= 24
    assert (a.candidates, a.hits) == (b.candidates, b.hits)
    again = _run(pair, klines, src, tmp_path / "a", batch_size=5)  # complete: nothing generated, totals kept
    assert again.generated == 0 and (again.hits, again.candidates) == (a.hits, a.candidates)
    assert a.acceptance_cost == pytest.approx(a.candidates / 24)
    assert "hit rate" in a.condition_line() and "candidate paths per sequence" in a.condition_line()
    da, db = read_synthetic(tmp_path / "a"), read_synthetic(tmp_path / "b")
    np.testing.assert_array_equal(da.to_array(), db.to_array())
    meta = da.metadata["condition"]
    assert meta["spec"] == "volatility:0.8-1" and meta["lower"] > 0 and meta["real_windows_meeting"] > 0
    # the report recomputes the hit rate from the bars and agrees with the run's count
    rep = scenario_report(str(tmp_path / "a"), klines, source=src, discriminative=False)
    assert rep.hit_rate == pytest.approx(a.hits / 24)
    assert rep.n_real == meta["real_windows_meeting"]


def test_context_regime_is_met_by_every_sequence_in_one_try(pair, sp500, tmp_path):
    klines, src = sp500
    s = _run(pair, klines, src, tmp_path / "r", batch_size=8, condition="regime:high-vol")
    assert (s.hits, s.candidates) == (24, 24)
    ds = read_synthetic(tmp_path / "r")
    cw = conditioned_windows(klines, "daily", L, H, parse_condition("regime:high-vol"), source=src)
    ends = set(zip(cw.matching.symbols, cw.matching.timestamps[:, L - 1], strict=True))
    first = ds.generated().drop_duplicates("sequence_id")
    assert all((s, np.datetime64(t, "ns")) in ends for s, t in zip(first["symbol"], first["context_end"], strict=True))


def test_stress_pack_reports_var_es_against_history_and_garch(pair, sp500, tmp_path):
    klines, src = sp500
    _run(pair, klines, src, tmp_path / "s", batch_size=24, condition=None, scenario="stress", n=16)
    rep = scenario_report(str(tmp_path / "s"), klines, source=src, discriminative=False)
    names = [r["set"] for r in rep.stress["rows"]]
    assert names == ["generated", "historical (real continuations)", "GARCH(1,1)-t"]
    hist = rep.stress["rows"][1]
    assert hist["es_1"] >= hist["var_1"] > 0 and hist["es_5"] >= hist["var_5"] > 0
    assert rep.stress["es1_ratio_to_historical"] == pytest.approx(rep.stress["rows"][0]["es_1"] / hist["es_1"])
    lo, hi = rep.stress["es1_ratio_interval"]
    assert np.isfinite([lo, hi]).all() and lo <= hi


def test_es_ratio_interval_covers_the_truth_and_widens_with_dependence():
    rng = np.random.default_rng(0)
    gen = rng.standard_t(4, 4000) * 0.02
    hist = rng.standard_t(4, 2000) * 0.02  # same law: the ratio's interval must contain 1
    groups = np.repeat(np.arange(1000), 4)
    lo, hi = es_ratio_interval(gen, groups, hist, block=1, seed=1)
    assert lo < 1 < hi and hi - lo < 0.6
    # 200 values each repeated 10 times (like overlapping windows): ten times fewer independent tails, so a
    # bootstrap whose blocks keep the runs gives a much wider interval than one that takes them as independent
    runs = np.repeat(hist[:200], 10)
    narrow = es_ratio_interval(gen, groups, runs, block=1, seed=1)
    wide = es_ratio_interval(gen, groups, runs, block=10, seed=1)
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])


def test_var_es_of_a_known_sample():
    r = -np.arange(1, 101) / 100.0  # losses 1 % … 100 %
    var, es = var_es(r, 0.05)
    assert var == pytest.approx(0.9505) and es == pytest.approx(np.mean(np.arange(96, 101) / 100.0))


def _cli(*args, cwd):
    code = f"from kronos_synth.cli import main; main({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.mark.parametrize("flags, words", [
    (["--condition", "volatility:0.9-0.2"], "empty or outside"),
    (["--condition", "drawdown:0.97"], "no real window"),
    (["--scenario", "stress", "--condition", "return:0-0.1"], "drop"),
])
def test_cli_bad_condition_exits_2_with_one_line(pair, tmp_path, flags, words):
    model = save_tiny_model(tmp_path / "m")
    r = _cli("generate", "--n", "4", "--freq", "daily", "--model", model, "--lookback", "32", "--horizon", "8",
             "--out", str(tmp_path / "o"), *flags, cwd=tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert words in lines[0] and not (tmp_path / "o" / "part-00000.parquet").exists()


def test_cli_generate_condition_then_evaluate_scenario(tmp_path):
    model = save_tiny_model(tmp_path / "m")
    r = _cli("generate", "--n", "12", "--freq", "daily", "--model", model, "--lookback", "32", "--horizon", "8",
             "--dtype", "fp32", "--condition", "regime:bear", "--samples-per-context", "3", "--out",
             str(tmp_path / "o"), "--no-compare", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hit rate 100.0 % (12 of 12 meet it), acceptance cost 1.00" in r.stdout
    r = _cli("evaluate", "scenario", "--real", "sp500-daily", "--synthetic", str(tmp_path / "o"), "--repeats", "1",
             "--epochs", "1", "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "context-return in [−∞," in r.stdout and "discriminative error" in r.stdout
    import json

    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["hit_rate"] == 1.0 and doc["condition"]["spec"] == "regime:bear" and doc["n_synthetic"] == 12
