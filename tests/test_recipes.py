"""Every recipe runs end to end offline at its --quick size and prints / returns a measured result."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

pytestmark = pytest.mark.slow


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_augment_forecaster(tmp_path, capsys):
    res = _load("augment_forecaster").main(["--quick", "--work", str(tmp_path)])
    rows = res["rows"]
    assert [r["ratio"] for r in rows] == [0.0, 0.5, 1.0, 2.0]
    assert [r["n_real"] for r in rows] == [40] * 4 and [r["n_synthetic"] for r in rows] == [0, 20, 40, 80]
    for r in rows:
        for k in ("price_ic", "price_rank_ic", "return_ic", "return_rank_ic"):
            assert -1 <= r[k]["mean"] <= 1 and len(r[k]["values"]) == 2
    out = capsys.readouterr().out
    assert "| real + synthetic ×2 | 40 | 80 |" in out and "Command: `python recipes/augment_forecaster.py" in out
    assert json.loads((tmp_path / "result.json").read_text())["n_test"] == 100
    assert (tmp_path / "train-ratio2.parquet").is_file()


def test_stress_scenarios(tmp_path, capsys):
    res = _load("stress_scenarios").main(["--quick", "--work", str(tmp_path)])
    rows = res["rows"]
    real_all = rows["real, after all contexts"]["volatility"]
    syn = rows["synthetic, after the same contexts"]["volatility"]
    real_hot = rows["real, after stressed contexts"]["volatility"]
    # Volatility persists: after the most volatile contexts, real and generated futures are both wilder
    # than the typical real future (medians = index 3 of the quantiles).
    assert real_hot[3] > 1.5 * real_all[3] and syn[3] > 1.5 * real_all[3]
    for name in rows:
        assert np.all(np.diff(rows[name]["return"]) >= 0)
        assert min(rows[name]["drawdown"]) >= 0
    assert res["hit_rate"] == 1.0  # a context regime: every scenario meets it
    hist = res["stress"]["rows"][1]
    assert hist["set"].startswith("historical") and hist["es_1"] >= hist["var_1"] > 0
    out = capsys.readouterr().out
    assert "| set | n | VaR 1 % | ES 1 % |" in out and "drawdown over the next 35 bars" in out
    assert (tmp_path / "scenarios" / "_manifest.json").is_file()


def test_read_and_plot(tmp_path, capsys):
    res = _load("read_and_plot").main(["--quick", "--work", str(tmp_path)])
    assert res["sequences"] == 8 and res["rows"] == 8 * 35 and res["duckdb_sequences"] == 8
    png = Path(res["png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "pandas : 280 rows" in out and "pyarrow: 280 rows" in out and "duckdb : 8 sequences" in out


def test_finetune_your_csv(tmp_path, capsys):
    res = _load("finetune_your_csv").main(["--quick", "--work", str(tmp_path)])
    assert res["val_loss_best"] <= res["val_loss_before"]
    assert set(res["results"]) == {"base (embedded default)", "fine-tuned"}
    for h in res["results"].values():
        assert 0 <= h["discriminative_mean"] <= 1
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "model" / "model.safetensors").is_file()
    assert "| fine-tuned |" in capsys.readouterr().out


def test_coupled_panels(tmp_path, capsys):
    res = _load("coupled_panels").main(["--quick", "--work", str(tmp_path)])
    rows = res["rows"]
    assert list(rows) == ["Kronos, coupling gaussian", "Kronos, coupling none", "real, train period"]
    real = rows["real, train period"]["correlation"]
    assert real["mean_pairwise_real"] > 0.7 and real["mean_pairwise_synthetic"] > 0.7  # two US indices co-move
    coupled = rows["Kronos, coupling gaussian"]["correlation"]["mean_pairwise_synthetic"]
    uncoupled = rows["Kronos, coupling none"]["correlation"]["mean_pairwise_synthetic"]
    assert coupled > uncoupled + 0.2
    assert "| set | mean pairwise corr |" in capsys.readouterr().out
    assert read_panels_ok(tmp_path / "panels-gaussian")


def read_panels_ok(folder) -> bool:
    from kronos_synth.data.synthetic import read_synthetic

    bars, symbols = read_synthetic(folder).to_panels()
    return symbols == ("SPX", "IXIC") and bars.shape[:2] == (16, 2)
