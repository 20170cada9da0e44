"""The benchmark runner (evaluation/run.py): a quick protocol end to end, its report, and stage resume."""

import json
import math
from pathlib import Path

import pytest

from evaluation.protocol import BASELINES, ROUNDTRIP, ProtocolError, load_protocol, settings_key
from evaluation.report import CALIBRATION_ROWS, best_setting, peer_lines
from evaluation.run import plan, run_protocol


def _finite(est):
    return est is not None and est.get("mean") is not None and math.isfinite(est["mean"])


@pytest.mark.slow
def test_quick_sp500_protocol_reports_every_row_and_resumes(tmp_path):
    out = tmp_path / "sp500"
    log: list[str] = []
    run_protocol("sp500-daily", quick=True, out=str(out), jobs=1, threads=1, echo=log.append)
    rep = json.loads((out / "report.json").read_text())
    state = json.loads((out / "stages.json").read_text())

    generators = ["kronos", *BASELINES]
    try:
        import kronos_synth.metrics.roundtrip  # noqa: F401
        generators.append(ROUNDTRIP)
    except ImportError:  # the round-trip row is skipped with a message until its module lands
        assert "tokenizer round trip" not in (out / "report.md").read_text().split("## Diversity")[0]
        assert "kronos_synth.metrics.roundtrip" in rep["skipped"]["roundtrip"]
    for g in generators:
        r = rep["generators"][g]
        assert _finite(r["discriminative"]["error"]) and 0.0 <= r["discriminative"]["error"]["mean"] <= 1.0, g
        assert _finite(r["tstr"]["price_ic"]) and _finite(r["tstr"]["price_rank_ic"]), g
        assert 0.0 <= r["diversity"]["recall"] <= 1.0 and r["stylized"]["rows"], g
        assert (out / "generators" / g / "report.md").is_file()
    for row in CALIBRATION_ROWS:
        assert _finite(rep["headline"]["discriminative_error"][row]), row
        assert _finite(rep["headline"]["tstr_price_ic"][row]), row
        assert _finite(rep["headline"]["context_fid"][row]), row  # the peer metrics' real-vs-real rows
    assert all(_finite(rep["headline"]["context_fid"][g]) for g in generators)
    assert "## Peer metrics" in (out / "report.md").read_text()
    # the calibration rows are computed once, on the same real samples as every generator row
    assert rep["calibration"]["n_real_test_used"] == rep["generators"]["kronos"]["data"]["n_real_test_used"] == 96
    # the Kronos model was fine-tuned from the embedded default on this market's train period
    assert rep["training"]["predictor"]["steps_done"] == 3 and "assets/default" in rep["training"]["predictor"]["init"]
    assert rep["training"]["generate"]["sequences"] == 96
    # the per-path volatility spread was chosen on validation contexts and is the one generation used
    spread = rep["training"]["spread"]["volatility"]
    assert [r["spread"] for r in spread["validation"]] == [0.0, 0.15, 0.3, 0.45, 0.6]
    best = min(spread["validation"], key=lambda r: (r["vol_crps"], r["spread"]))["spread"]
    assert spread["spread"] == best
    assert "Per-path volatility scale spread (chosen on" in (out / "report.md").read_text()
    from kronos_synth.data.synthetic import read_synthetic

    assert read_synthetic(out / "work" / "kronos").metadata.get("volatility_spread", 0.0) == best
    # the sweep covers the whole grid, records a best setting and draws the trade-off plot
    assert len(rep["sweep"]["settings"]) == 12 and rep["sweep"]["best"] is not None
    assert (out / "sweep_tradeoff.png").is_file() and (out / "diversity_tsne.png").is_file()
    # every stage finished (or was skipped with a reason) and has a wall time
    names = [s.name for s in plan(load_protocol("sp500-daily", quick=True))]
    assert set(state["stages"]) == set(names)
    for name, e in state["stages"].items():
        assert e["status"] == "finished" or (e["status"] == "skipped" and e["result"]["skipped"]), name
        assert e["wall_time_s"] is not None
    assert "report.md" in log[-1]

    # a rerun skips every finished stage
    run_protocol("sp500-daily", quick=True, out=str(out), jobs=1, threads=1, echo=log.append)
    last = json.loads((out / "stages.json").read_text())["runs"][-1]
    retried = {n for n, e in state["stages"].items() if e["status"] == "skipped"}
    assert set(last["ran"]) == retried and len(last["skipped"]) == len(names) - len(retried)

    # a changed setting reruns exactly the stages that depend on it
    run_protocol("sp500-daily", quick=True, out=str(out), jobs=1, threads=1, echo=log.append,
                 overrides={"baselines": {"bootstrap": {"block": 5.0}}})
    last = json.loads((out / "stages.json").read_text())["runs"][-1]
    assert set(last["ran"]) - retried == {"baseline:bootstrap", "evaluate:bootstrap", "peers"}
    rep2 = json.loads((out / "report.json").read_text())
    assert rep2["baselines"]["bootstrap"]["options"] == {"block": 5.0}
    assert rep2["generators"]["kronos"] == rep["generators"]["kronos"]  # untouched rows are reused as they were


def test_stage_keys_follow_their_dependencies():
    a = {s.name: s.key for s in plan(load_protocol("goog-daily", quick=True))}
    b = {s.name: s.key for s in plan(load_protocol("goog-daily", quick=True,
                                                   overrides={"kronos": {"predictor_steps": 7}}))}
    changed = {n for n in a if a[n] != b[n]}
    assert changed == {"predictor", "select", "spread", "generate", "evaluate:kronos", "forecast-calibration", "peers",
                       *(n for n in a if n.startswith("sweep:"))}
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})


def test_peer_table_has_a_row_per_generator_and_the_real_vs_real_rows():
    def peers(fid, p):
        return {"context_fid": {"score": {"mean": fid, "half_width": None}}, "correlational": 0.01,
                "w1": [{"k": 1, "w1_scaled": 0.1}, {"k": 5, "w1_scaled": 0.2}, {"k": 20, "w1_scaled": None}],
                "acf_returns": 0.01, "acf_abs_returns": 0.02, "leverage": 1.0, "gain_loss_ratio": 0.1,
                "signature": {"mmd2": 0.001, "p_value": p}}

    rep = {"generators": {"kronos": {"peers": peers(0.5, 0.01)}, "garch": {"peers": None}},
           "calibration": {"peers": {"real (train period)": peers(0.05, 0.4), "shuffled bars": peers(4.0, 0.002)}}}
    lines = peer_lines(rep, ["kronos", "garch"])
    rows = [ln for ln in lines if ln.startswith("| ") and "Context-FID" not in ln]
    assert [r.split(" | ")[0] for r in rows] == ["| Kronos", "| real (train period)", "| shuffled bars"]
    assert "| 0.500 | 0.0100 | 0.100 | 0.200 | n/a |" in rows[0] and rows[0].endswith("| 0.0010 | 0.010 |")
    assert peer_lines({"generators": {"kronos": {}}, "calibration": None}, ["kronos"]) == []  # older results


def test_best_sweep_setting_is_the_best_mean_rank():
    rows = [{"temperature": 0.7, "top_p": 0.9, "discriminative_error": 0.30, "price_rank_ic": 0.02, "knn_recall": 0.5},
            {"temperature": 1.0, "top_p": 0.95, "discriminative_error": 0.40, "price_rank_ic": 0.03, "knn_recall": 0.6},
            {"temperature": 1.15, "top_p": 1.0, "discriminative_error": 0.45, "price_rank_ic": 0.01, "knn_recall": 0.4},
            {"temperature": 0.85, "top_p": 1.0, "discriminative_error": float("nan"), "price_rank_ic": 0.9,
             "knn_recall": 0.9}]
    best = best_setting(rows)
    assert (best["temperature"], best["top_p"]) == (1.0, 0.95) and best["mean_rank"] == pytest.approx(4 / 3)
    assert best_setting([]) is None


def test_folder_protocol_without_its_data_is_skipped_with_one_line(tmp_path):
    log: list[str] = []
    assert run_protocol("crypto-15m", quick=True, data_dir=str(tmp_path), echo=log.append) is None
    assert len(log) == 1 and log[0].startswith("crypto-15m: skipped") and "--data-dir" in log[0]


@pytest.mark.parametrize("baselines, needle", [
    ({"timegan": {"layerz": 3}}, "[baselines.timegan] timegan: unknown option 'layerz' (known: ae_steps, batch,"),
    ({"garch": {"steps": 5}}, "[baselines.garch] garch: unknown option 'steps'"),
    ({"timevae": {"steps": 0}}, "[baselines.timevae] timevae: steps must be a positive whole number, got 0"),
    ({"timegann": {}}, "[baselines.timegann] is not a baseline"),
])
def test_baseline_options_are_checked_when_the_protocol_loads(baselines, needle):
    from evaluation.protocol import ProtocolError

    with pytest.raises(ProtocolError) as e:
        load_protocol("sp500-daily", overrides={"baselines": baselines})
    assert needle in str(e.value)


def test_every_protocol_has_valid_baseline_options():
    from evaluation.protocol import protocol_names

    for name in protocol_names():
        for quick in (False, True):
            load_protocol(name, quick=quick)


def test_unknown_protocol_is_one_line_exit_2(capsys):
    from evaluation.run import main

    with pytest.raises(SystemExit) as e:
        main(["no-such-protocol"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown protocol 'no-such-protocol'") and "\n" not in err


def test_pool_workers_stop_when_the_runner_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "runner.py"
    script.write_text(
        "import os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from multiprocessing import get_context\n"
        "from evaluation.run import _worker_init\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=get_context('spawn'), initializer=_worker_init)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": root})
    worker = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)  # no cleanup at all in the runner
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it counts as gone
            return f.read().split(") ")[1][0] != "Z"

    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(worker)


def test_auto_spread_is_chosen_by_a_stage_before_anything_samples():
    auto = {s.name: s for s in plan(load_protocol("goog-daily", quick=True,
                                                  overrides={"kronos": {"temperature_spread": "auto",
                                                                        "volatility_spread": 0.0}}))}
    assert auto["spread"].deps == ("select",) and auto["select"].deps == ("predictor",)
    assert auto["generate"].deps == ("spread",) and auto["forecast-calibration"].deps == ("spread",)
    fixed = {s.name: s for s in plan(load_protocol("goog-daily", quick=True,
                                                   overrides={"kronos": {"volatility_spread": 0.3}}))}
    plain = {s.name: s for s in plan(load_protocol("goog-daily", quick=True,
                                                   overrides={"kronos": {"volatility_spread": 0.0}}))}
    assert "spread" not in fixed and fixed["generate"].deps == ("select",)
    assert fixed["generate"].key != plain["generate"].key and fixed["predictor"].key == plain["predictor"].key
    assert fixed["select"].key != plain["select"].key  # a fixed spread samples the candidates too
    unselected = {s.name: s for s in plan(load_protocol("goog-daily", quick=True, overrides={"kronos": {"select": ""}}))}
    assert "select" not in unselected and unselected["spread"].deps == ("predictor",)
    with pytest.raises(ProtocolError, match="kronos.select"):
        load_protocol("goog-daily", overrides={"kronos": {"select": "test"}})
    for key in ("temperature_spread", "volatility_spread"):
        for bad in ("wide", -0.1, True):
            with pytest.raises(ProtocolError, match=key):
                load_protocol("goog-daily", overrides={"kronos": {key: bad}})


def test_zero_shot_plan_has_no_training_stage_and_uses_the_embedded_model():
    from evaluation.run import ZERO_SHOT

    proto = load_protocol("sp500-daily", quick=True, overrides=ZERO_SHOT)
    stages = {s.name: s for s in plan(proto)}
    assert "tokenizer" not in stages and "predictor" not in stages and not any(n.startswith("sweep") for n in stages)
    assert stages["spread"].deps == ("data",) and stages["generate"].deps == ("spread",)  # sp500: spread "auto"
    assert set(proto["generators"]) == {"kronos", "bootstrap"}
    assert [n for n in stages if n.startswith("evaluate:")] == ["evaluate:kronos", "evaluate:bootstrap"]
    # the fine-tune protocol's generate stage has another key: results never mix
    fine = {s.name: s for s in plan(load_protocol("sp500-daily", quick=True))}
    assert fine["generate"].key != stages["generate"].key
    from evaluation.stages import StageContext, model_dirs
    from kronos_synth.model.pretrained import default_model_dir

    ctx = StageContext(proto=proto, out="unused", source="sp500-daily", files=[], train_source=None)
    assert model_dirs(ctx) == (str(default_model_dir() / "model"), str(default_model_dir() / "tokenizer"))


def test_adopt_finished_copies_only_same_key_stages_with_their_outputs(tmp_path):
    from evaluation.run import ZERO_SHOT, StageLog, adopt_finished

    proto = load_protocol("sp500-daily", quick=True, overrides=ZERO_SHOT)
    stages = {s.name: s for s in plan(proto)}
    src, out = tmp_path / "full", tmp_path / "zero"
    (src / "generators" / "bootstrap").mkdir(parents=True)
    (src / "generators" / "bootstrap" / "report.json").write_text("{}")
    (src / "calibration.json").write_text("{}")
    theirs = {
        "calibration": {"key": stages["calibration"].key, "status": "finished", "result": {"rows": 3}},
        "evaluate:bootstrap": {"key": stages["evaluate:bootstrap"].key, "status": "finished"},
        "evaluate:kronos": {"key": "another model", "status": "finished"},  # other key: not adopted
        "baseline:bootstrap": {"key": stages["baseline:bootstrap"].key, "status": "finished"},  # outputs gone
    }
    (src / "stages.json").write_text(json.dumps({"stages": theirs}))
    out.mkdir()
    log = StageLog(out, proto)
    adopted = adopt_finished(list(stages.values()), src, log, out)
    assert adopted == ["calibration", "evaluate:bootstrap"]
    assert (out / "calibration.json").is_file() and (out / "generators" / "bootstrap" / "report.json").is_file()
    assert log.finished(stages["calibration"]) and not log.finished(stages["baseline:bootstrap"])
    assert log.entry("calibration")["result"] == {"rows": 3}


def _write_file(ctx, path):
    (Path(ctx.out) / path).write_text(path)
    return {"wrote": path}


def _read_file(ctx, path):
    return {"read": (Path(ctx.out) / path).read_text()}


def test_finished_stage_whose_outputs_are_gone_is_redone_when_a_pending_stage_needs_it(tmp_path):
    """A fresh machine has stages.json (committed) but not work/: what a pending stage needs is rebuilt."""
    from evaluation.run import Stage, StageLog, assign_keys, execute
    from evaluation.stages import StageContext

    proto = load_protocol("sp500-daily", quick=True)
    stages = assign_keys([
        Stage("make", _write_file, {"v": 1}, params={"path": "a.txt"}, outputs=("a.txt",)),
        Stage("other", _write_file, {"v": 1}, params={"path": "b.txt"}, outputs=("b.txt",)),
        Stage("use", _read_file, {"v": 1}, ("make",), params={"path": "a.txt"}),
        Stage("survey", _read_file, {"v": 1}, ("other",), params={"path": "a.txt"}, tolerates_missing=True),
    ], {})
    ctx = StageContext(proto=proto, out=str(tmp_path), source="x", files=[], train_source=None)
    log = StageLog(tmp_path, proto)
    execute(stages, ctx, log, jobs=1, threads=1, echo=lambda line: None)
    for name in ("use", "survey"):  # pretend these changed: their entries are dropped
        log.data["stages"].pop(name)
    (tmp_path / "a.txt").unlink(), (tmp_path / "b.txt").unlink()  # a fresh machine: outputs gone
    summary = execute(stages, ctx, log, jobs=1, threads=1, echo=lambda line: None)
    assert summary["ran"] == ["make", "use", "survey"]  # "other" is not redone: "survey" tolerates its absence
    assert (tmp_path / "a.txt").is_file() and not (tmp_path / "b.txt").exists()


def test_the_select_stage_decides_which_model_samples(tmp_path):
    from evaluation import stages as st

    proto = load_protocol("goog-daily", quick=True)
    ctx = st.StageContext(proto=proto, out=str(tmp_path), source="goog-daily")
    trained = (str(tmp_path / "work" / "predictor"), str(tmp_path / "work" / "tokenizer"))
    assert st.model_dirs(ctx) == trained == st.trained_dirs(ctx)  # nothing selected yet
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "selected.json").write_text('{"model": "embedded"}')
    embedded = st.model_dirs(ctx)
    assert embedded != trained and embedded[0].endswith("model") and st.trained_dirs(ctx) == trained
    off = {**proto, "kronos": {**proto["kronos"], "select": ""}}  # selection off: a stale file is ignored
    assert st.model_dirs(st.StageContext(proto=off, out=str(tmp_path), source="goog-daily")) == trained
