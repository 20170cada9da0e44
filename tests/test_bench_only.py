"""`evaluation.run --only STAGE`: one stage and its unfinished dependencies; the forecast-calibration stage."""

import json

import pytest

from evaluation.run import run_protocol
from kronos_synth.data.errors import InputError


@pytest.mark.slow
def test_only_runs_the_stage_and_its_dependencies(tmp_path):
    out = tmp_path / "sp500"
    log: list[str] = []
    run_protocol("sp500-daily", quick=True, out=str(out), jobs=1, threads=1, echo=log.append,
                 only=["forecast-calibration"])
    state = json.loads((out / "stages.json").read_text())
    assert set(state["stages"]) == {"data", "tokenizer", "predictor", "select", "spread", "forecast-calibration"}
    rep = json.loads((out / "report.json").read_text())
    fc = rep["forecast_calibration"]
    assert fc["calibrated_temperature"] in (1.0, 1.25) and [v["temperature"] for v in fc["validation"]] == [1.0, 1.25]
    gens = {r["generator"] for r in fc["rows"]}
    assert {"kronos", "garch", "bootstrap"} <= gens
    assert all(0 <= r["coverage_90"] <= 1 and r["crps"] > 0 for r in fc["rows"])
    assert "## Calibration of conditional paths" in (out / "report.md").read_text()
    assert (out / "forecast-calibration" / "calibration.png").is_file()
    # the rest of the plan is untouched; a second --only run skips what is finished
    log.clear()
    run_protocol("sp500-daily", quick=True, out=str(out), jobs=1, threads=1, echo=log.append,
                 only=["forecast-calibration"])
    assert not any(line.endswith(": running") for line in log)


def test_only_an_unknown_stage_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no stage"):
        run_protocol("sp500-daily", quick=True, out=str(tmp_path / "x"), jobs=1, threads=1, echo=lambda s: None,
                     only=["nonsense"])
