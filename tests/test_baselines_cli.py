import json

import numpy as np
import pytest

from kronos_synth.cli import main
from kronos_synth.data.synthetic import read_synthetic


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.mark.parametrize("name,extra", [
    ("garch", []),
    ("timevae", ["--steps", "1", "-o", "filters=[8,8,8]", "-o", "epoch_windows=64"]),
])
def test_fit_and_sample_write_a_schema_v1_dataset(tmp_path, capsys, name, extra):
    model = tmp_path / "model"
    code, out, err = run(["baseline", "fit", name, "--data", "goog-daily", "--freq", "daily",
                          "--out", str(model), "--seed", "1", *extra], capsys)
    assert code == 0, err
    assert f"{name}: fit on" in out and "train windows of 35 bars" in out
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["name"] == name and cfg["window"] == 35 and cfg["seed"] == 1
    training = json.loads((model / "training.json").read_text())
    assert training["freq"] == "daily" and training["source"] == "goog-daily"

    synth = tmp_path / "synth"
    code, out, err = run(["baseline", "sample", str(model), "--n", "30", "--out", str(synth),
                          "--part-size", "20", "--seed", "4"], capsys)
    assert code == 0, err
    ds = read_synthetic(synth)
    assert ds.n_sequences == 30 and len(ds.manifest["parts"]) == 2
    assert ds.metadata["generator"] == name and ds.metadata["horizon"] == 35
    assert ds.metadata["baseline_options"] == cfg["options"] and ds.metadata["seed"] == 4
    x = ds.to_array()
    assert x.shape == (30, 35, 6) and np.isfinite(x).all() and (x[..., :4] > 0).all()
    f = ds.frame
    assert set(f["symbol"]) == {"GOOG"} and f["context_end"].isna().all()
    # timestamps continue a real train window's business-day calendar
    last = training["train_last"]
    ts = f.sort_values(["sequence_id", "step"])["timestamp"]
    assert (ts.dt.day_of_week < 5).all()
    assert ts.min() > np.datetime64(training["train_first"]) and ts.max() <= np.datetime64(last) + np.timedelta64(60, "D")
    assert (f.groupby("sequence_id")["timestamp"].diff().dropna() > np.timedelta64(0)).all()

    # same seed → same bytes; a rerun resumes (nothing to write)
    again = tmp_path / "again"
    run(["baseline", "sample", str(model), "--n", "30", "--out", str(again), "--part-size", "20", "--seed", "4"],
        capsys)
    for p in ("part-00000.parquet", "part-00001.parquet"):
        assert (synth / p).read_bytes() == (again / p).read_bytes()
    code, out, _ = run(["baseline", "sample", str(model), "--n", "30", "--out", str(synth), "--part-size", "20",
                        "--seed", "4"], capsys)
    assert code == 0 and out.startswith("wrote 0 of 2 parts")


@pytest.mark.parametrize("argv,fragment", [
    (["baseline", "fit", "wavenet", "--freq", "daily", "--out", "x"], "wavenet"),
    (["baseline", "fit", "garch", "--freq", "fortnightly", "--out", "x"], "unknown frequency"),
    (["baseline", "fit", "garch", "--freq", "daily", "--data", "no-such.csv", "--out", "x"], "no-such.csv"),
    (["baseline", "fit", "garch", "--freq", "daily", "--steps", "5", "--out", "x"], "garch takes no --steps"),
    (["baseline", "fit", "timegan", "--freq", "daily", "--steps", "0", "--out", "x"], "positive"),
    (["baseline", "fit", "timegan", "--freq", "daily", "-o", "layerz=3", "--out", "x"], "unknown option"),
    (["baseline", "fit", "garch", "--freq", "daily", "-o", "steps=3", "--out", "x"],
     "--option': garch: unknown option 'steps' (known: burn, min_obs, vol_bins)"),
    (["baseline", "fit", "timevae", "--freq", "daily", "-o", "steps=0", "--out", "x"],
     "--option': timevae: steps must be a positive whole number, got 0"),
    (["baseline", "fit", "timegan", "--freq", "daily", "-o", "layers", "--out", "x"], "KEY=VALUE"),
    (["baseline", "fit", "garch", "--data", "goog-daily", "--freq", "daily", "--window", "5000", "--out", "x"],
     "window"),
    (["baseline", "sample", "no-model-here", "--n", "5", "--out", "y"], "config.json"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and fragment in err
    assert "Traceback" not in err


def test_sample_bad_n_or_old_model_exits_2(tmp_path, capsys):
    model = tmp_path / "m"
    assert run(["baseline", "fit", "bootstrap", "--data", "goog-daily", "--freq", "daily", "--out", str(model)],
               capsys)[0] == 0
    code, _, err = run(["baseline", "sample", str(model), "--n", "0", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and err.count("\n") == 1
    # a folder fitted before amount became log(VWAP / close) must be refitted, not sampled wrongly
    cfg = json.loads((model / "config.json").read_text())
    cfg["transform"] = cfg["transform"].replace("scale-free v2", "scale-free").replace(
        "log(amount / (volume * close))", "log1p(amount)")
    (model / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(["baseline", "sample", str(model), "--n", "5", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and err.count("\n") == 1 and "refit" in err and "Traceback" not in err


def test_help_has_examples(capsys):
    for argv in (["baseline", "--help"], ["baseline", "fit", "--help"], ["baseline", "sample", "--help"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and "Example" in out and "kronos-synth baseline" in out
