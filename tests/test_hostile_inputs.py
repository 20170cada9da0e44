"""Hostile inputs through the CLI, one table per command: exit 2, ONE line on stderr naming the file /
column / row or the option, no traceback, and nothing half-written (no new output folder or file; an
existing folder passed in is left exactly as it was).

Each row: id, setup(lab, tmp) → command arguments (it may copy and damage a shared input into tmp),
substrings of the error line. The shared inputs (`lab`) are built once per module from the embedded
goog-daily data: a fitted bootstrap baseline, synthetic sets sampled from it, a 2-step tiny tokenizer run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_synth.cli import main
from kronos_synth.data.datasets import dataset_names, load_dataset
from kronos_synth.model.pretrained import default_model_dir

TRAIN_ARGS = ["--data", "goog-daily", "--config", "tiny", "--lookback", "40", "--horizon", "10",
              "--batch-size", "16", "--no-progress"]


def run(argv: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def one_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (to prove a refused command changed nothing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def goog(rows: int = 300) -> pd.DataFrame:
    return load_dataset("goog-daily").head(rows).drop(columns=["symbol"]).reset_index(drop=True)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lab")

    def ok(argv):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        assert exc.value.code in (0, None), argv

    ok(["baseline", "fit", "bootstrap", "--data", "goog-daily", "--freq", "daily", "--out", root / "bs",
        "--no-progress"])
    for name, n, seed, part in (("syn3", 3, 0, 1000), ("syn4", 4, 0, 1000), ("syn6", 6, 0, 3), ("syn6b", 6, 1, 3)):
        ok(["baseline", "sample", root / "bs", "--n", n, "--seed", seed, "--part-size", part, "--out", root / name,
            "--no-progress"])
    ok(["train", "tokenizer", *TRAIN_ARGS, "--steps", "2", "--eval-every", "1", "--out", root / "tok"])
    write_csv(goog(200), root / "short.csv")  # 200 daily bars: a handful of real test windows of 35 bars
    write_csv(goog(1), root / "one.csv")
    return root


def copy(lab: Path, tmp: Path, name: str) -> Path:
    shutil.copytree(lab / name, tmp / name)
    return tmp / name


def damaged(name: str, damage):
    """setup: a copy of lab/`name` in tmp, passed to `damage(folder)`; returns the folder."""
    def setup(lab: Path, tmp: Path) -> Path:
        folder = copy(lab, tmp, name)
        damage(folder)
        return folder
    return setup


def write(rel: str, data: bytes | str):
    def damage(folder: Path) -> None:
        (folder / rel).write_bytes(data.encode() if isinstance(data, str) else data)
    return damage


def remove(rel: str):
    return lambda folder: (folder / rel).unlink()


def mixed_runs(lab: Path, tmp: Path) -> Path:
    """Part 0 of one run and part 1 of another (same part size, other seed), no manifest."""
    folder = tmp / "mixed"
    folder.mkdir()
    shutil.copy(lab / "syn6" / "part-00000.parquet", folder)
    shutil.copy(lab / "syn6b" / "part-00001.parquet", folder)
    return folder


def foreign_part(lab: Path, tmp: Path) -> Path:
    """A complete run whose part 1 was replaced by another run's part 1 (the manifest names the first run)."""
    folder = copy(lab, tmp, "syn6")
    shutil.copy(lab / "syn6b" / "part-00001.parquet", folder)
    return folder


class Evil:
    """Unpickling this runs `touch`-like code: a weights-only load must refuse it, never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- train tokenizer / train model ---------------------------------------------------------------

TOKENIZER_DIR = default_model_dir() / "tokenizer"

TRAIN_SETTINGS = [
    # (id, command, extra args, needles) — all refused before data is read or --out is created
    ("tok_eval_every_0", "tokenizer", ["--steps", "2", "--eval-every", "0"], ["eval-every", "must be positive", "got 0"]),
    ("tok_lr_negative", "tokenizer", ["--steps", "2", "--lr", "-1"], ["lr", "positive learning rate", "got -1"]),
    ("tok_steps_0", "tokenizer", ["--steps", "0"], ["steps", "positive", "got 0"]),
    ("tok_batch_size_0", "tokenizer", ["--steps", "2", "--batch-size", "0"], ["batch-size", "must be positive"]),
    ("tok_epochs_0", "tokenizer", ["--epochs", "0"], ["epochs", "must be positive"]),
    ("tok_patience_negative", "tokenizer", ["--steps", "2", "--patience", "-1"], ["patience", "≥ 0", "got -1"]),
    ("tok_steps_and_epochs", "tokenizer", ["--steps", "2", "--epochs", "1"], ["exactly one of"]),
    ("tok_lookback_0", "tokenizer", ["--steps", "2", "--lookback", "0"], ["lookback", "must be positive", "got 0"]),
    ("tok_horizon_0", "tokenizer", ["--steps", "2", "--horizon", "0"], ["horizon", "must be positive"]),
    ("tok_d_model_0", "tokenizer", ["--steps", "2", "--d-model", "0"], ["'d_model'", "at least 1, got 0"]),
    ("tok_s1_bits_0", "tokenizer", ["--steps", "2", "--s1-bits", "0"], ["'s1_bits'", "at least 1"]),
    ("model_eval_every_0", "model", ["--steps", "2", "--eval-every", "0"], ["eval-every", "must be positive"]),
    ("model_lr_negative", "model", ["--steps", "2", "--lr", "-1"], ["lr", "positive learning rate"]),
    ("model_steps_0", "model", ["--steps", "0"], ["steps", "positive", "got 0"]),
    ("model_batch_size_0", "model", ["--steps", "2", "--batch-size", "0"], ["batch-size", "must be positive"]),
    ("model_patience_negative", "model", ["--steps", "2", "--patience", "-1"], ["patience", "≥ 0"]),
    ("model_layers_0", "model", ["--steps", "2", "--layers", "0"], ["'n_layers'", "at least 1, got 0"]),
]


@pytest.mark.parametrize("case, command, extra, needles", TRAIN_SETTINGS, ids=[c[0] for c in TRAIN_SETTINGS])
def test_train_bad_settings_leave_no_folder(case, command, extra, needles, tmp_path, capsys):
    out = tmp_path / "run"
    tok = ["--tokenizer", TOKENIZER_DIR] if command == "model" else []
    code, _, err = run(["train", command, *tok, *TRAIN_ARGS, *extra, "--out", out], capsys)
    assert code == 2
    one_line(err, *needles)
    assert not out.exists()


def _junk_pt(folder: Path) -> None:
    (folder / "checkpoint-last" / "trainer_state.pt").write_bytes(np.random.default_rng(0).bytes(4096))


def _pickled_code(folder: Path) -> None:
    torch.save({"fingerprint": "x", "payload": Evil(folder.parent / "EXECUTED")},
               folder / "checkpoint-last" / "trainer_state.pt")


def _other_fingerprint(folder: Path) -> None:
    state = folder / "checkpoint-last" / "trainer_state.json"
    state.write_text(json.dumps(dict(json.loads(state.read_text()), fingerprint="0" * 64)))


TRAIN_STATE = [
    # (id, damage of a copy of the finished 2-step run, needles); the rerun uses the same settings
    ("junk_trainer_state_pt", _junk_pt, ["trainer_state.pt", "cannot be loaded as a trainer state"]),
    ("pickled_code_in_state", _pickled_code, ["trainer_state.pt", "pickled objects", "never loaded"]),
    ("truncated_state_pt", lambda f: (f / "checkpoint-last" / "trainer_state.pt").write_bytes(
        (f / "checkpoint-last" / "trainer_state.pt").read_bytes()[:300]), ["trainer_state.pt", "cannot be loaded"]),
    ("old_format_without_json", remove("checkpoint-last/trainer_state.json"),
     ["trainer_state.pt", "without trainer_state.json", "new --out folder"]),
    ("truncated_state_json", write("checkpoint-last/trainer_state.json", '{"format": 2, "finger'),
     ["trainer_state.json", "unreadable"]),
    ("state_json_not_an_object", write("checkpoint-last/trainer_state.json", "[]"),
     ["trainer_state.json", "not a trainer state"]),
    ("state_of_another_run", _other_fingerprint, ["different data or settings"]),
]


@pytest.mark.parametrize("case, damage, needles", TRAIN_STATE, ids=[c[0] for c in TRAIN_STATE])
def test_train_resume_from_a_bad_state_is_refused(case, damage, needles, lab, tmp_path, capsys):
    out = damaged("tok", damage)(lab, tmp_path)
    before = snapshot(out)
    code, _, err = run(["train", "tokenizer", *TRAIN_ARGS, "--steps", "2", "--eval-every", "1", "--out", out], capsys)
    assert code == 2
    one_line(err, *needles)
    assert snapshot(out) == before
    assert not (tmp_path / "EXECUTED").exists()  # the pickled payload never ran


def test_trainer_state_loads_weights_only_and_json_comes_first(lab):
    last = lab / "tok" / "checkpoint-last"
    meta = json.loads((last / "trainer_state.json").read_text())
    state = torch.load(last / "trainer_state.pt", map_location="cpu", weights_only=True)
    assert meta["fingerprint"] == state["fingerprint"] and meta["complete"] is True
    assert meta["result"] == state["result"] and meta["result"]["steps_done"] == 2
    assert isinstance(state["optimizer"], dict) and isinstance(state["torch_rng"], torch.Tensor)


def test_no_unsafe_torch_load_in_the_package():
    root = Path(__file__).resolve().parent.parent
    hits = [str(p) for d in ("kronos_synth", "recipes", "evaluation", "tests") for p in (root / d).rglob("*.py")
            if "weights_only=" + "False" in p.read_text(encoding="utf-8")]
    assert hits == []


# --- evaluate -----------------------------------------------------------------------------------

EVALUATE = [
    # (id, metric, setup → --synthetic, real, needles)
    ("3_synthetic_sequences", "stylized", lambda lab, tmp: lab / "syn3", "goog-daily",
     ["synthetic set has 3 sequences", "at least 4"]),
    ("3_synthetic_sequences_all", "all", lambda lab, tmp: lab / "syn3", "goog-daily", ["has 3 sequences"]),
    ("4_sequences_for_knn", "diversity", lambda lab, tmp: lab / "syn4", "goog-daily",
     ["diversity needs at least 6", "got 4 and 4"]),
    ("4_sequences_discriminative", "discriminative", lambda lab, tmp: lab / "syn4", "goog-daily",
     ["discriminative row 'synthetic'", "2 on each side"]),
    ("too_few_real_windows", "discriminative", lambda lab, tmp: lab / "syn6", "SHORT",
     ["discriminative row", "need at least 4 real"]),
    ("no_real_test_windows", "stylized", lambda lab, tmp: lab / "syn6", "HEAD60", ["0 test windows"]),
    ("one_real_bar_with_freq", "stylized", lambda lab, tmp: lab / "syn6", "ONE",
     ["needs at least 2 bars per symbol", "freq daily"]),
    ("truncated_manifest", "stylized", damaged("syn6", write("_manifest.json", '{"schema_version": 1, "run_')),
     "goog-daily", ["_manifest.json", "unreadable manifest"]),
    ("manifest_is_a_list", "stylized", damaged("syn6", write("_manifest.json", "[]")), "goog-daily",
     ["_manifest.json", "is an array, not a JSON object"]),
    ("manifest_parts_garbage", "stylized", damaged("syn6", write("_manifest.json", '{"complete": true, "parts": [1]}')),
     "goog-daily", ["_manifest.json", "not a list of parts"]),
    ("parts_of_two_runs", "stylized", mixed_runs, "goog-daily", ["parts of different runs", "keep one run per folder"]),
    ("foreign_part_under_manifest", "stylized", foreign_part, "goog-daily",
     ["part-00001.parquet", "mixes two runs"]),
]


def _real(lab: Path, tmp: Path, real: str) -> str:
    if real == "SHORT":
        return str(lab / "short.csv")
    if real == "ONE":
        return str(lab / "one.csv")
    if real == "HEAD60":
        return str(write_csv(goog(60), tmp / "head60.csv"))
    return real


@pytest.mark.parametrize("case, metric, setup, real, needles", EVALUATE, ids=[c[0] for c in EVALUATE])
def test_evaluate(case, metric, setup, real, needles, lab, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run(["evaluate", metric, "--real", _real(lab, tmp_path, real), "--synthetic",
                        setup(lab, tmp_path), "--freq", "daily", "--repeats", "1", "--epochs", "1", "--no-progress",
                        "--out", out], capsys)
    assert code == 2
    line = one_line(err, *needles)
    assert "pass --freq" not in line
    assert not out.exists()


# --- baseline fit / sample ------------------------------------------------------------------------


def _object_npy(folder: Path) -> None:
    np.save(folder / "anchors.npy", np.array([{"price": 1.0}], dtype=object), allow_pickle=True)


def _object_npz(folder: Path) -> None:
    with np.load(folder / "bars.npz") as d:
        arrays = {k: d[k] for k in d.files}
    arrays["bars"] = np.array([1.0, "x", None], dtype=object)
    np.savez(folder / "bars.npz", **arrays)


def _kronos_checkpoint(lab: Path, tmp: Path) -> Path:
    shutil.copytree(default_model_dir() / "model", tmp / "predictor")
    return tmp / "predictor"


BASELINE_SAMPLE = [
    # (id, setup → model folder, needles)
    ("missing_anchors", damaged("bs", remove("anchors.npy")), ["anchors.npy is missing"]),
    ("missing_state", damaged("bs", remove("bars.npz")), ["bars.npz is missing"]),
    ("missing_config", damaged("bs", remove("config.json")), ["no config.json"]),
    ("missing_calendar", damaged("bs", remove("train_calendar.parquet")), ["no train_calendar.parquet"]),
    ("object_array_npy", damaged("bs", _object_npy), ["anchors.npy", "object array", "allow_pickle=False"]),
    ("object_array_npz", damaged("bs", _object_npz), ["bars.npz", "object array", "allow_pickle=False"]),
    ("truncated_npz", damaged("bs", write("bars.npz", b"PK\x03\x04 truncated")), ["bars.npz", "not a readable"]),
    ("config_not_an_object", damaged("bs", write("config.json", "[1, 2]")), ["config.json", "not a JSON object"]),
    ("training_json_truncated", damaged("bs", write("training.json", '{"freq": ')), ["training.json", "unreadable"]),
    ("calendar_not_parquet", damaged("bs", write("train_calendar.parquet", "junk")),
     ["train_calendar.parquet", "unreadable"]),
    ("kronos_checkpoint", _kronos_checkpoint, ["is a Kronos checkpoint, not a baseline folder"]),
]


@pytest.mark.parametrize("case, setup, needles", BASELINE_SAMPLE, ids=[c[0] for c in BASELINE_SAMPLE])
def test_baseline_sample(case, setup, needles, lab, tmp_path, capsys):
    out = tmp_path / "synth"
    code, _, err = run(["baseline", "sample", setup(lab, tmp_path), "--n", "4", "--out", out, "--no-progress"],
                       capsys)
    assert code == 2
    one_line(err, *needles)
    assert not out.exists()


def _outlier_csv(lab: Path, tmp: Path) -> str:
    df = goog(300)
    df.loc[150, "high"] = 1e308
    return str(write_csv(df, tmp / "outlier.csv"))


BASELINE_FIT = [
    # (id, setup → (--data, --out), needles); an existing --out must stay as it was
    ("out_is_synthetic_dataset", lambda lab, tmp: ("goog-daily", copy(lab, tmp, "syn6")),
     ["is a synthetic dataset folder", "new --out folder"]),
    ("out_holds_parts_only", lambda lab, tmp: ("goog-daily", damaged("syn6", remove("_manifest.json"))(lab, tmp)),
     ["is a synthetic dataset folder"]),
    ("out_is_kronos_checkpoint", lambda lab, tmp: ("goog-daily", _kronos_checkpoint(lab, tmp)),
     ["holds a Kronos checkpoint"]),
    ("one_bar_with_freq", lambda lab, tmp: (lab / "one.csv", tmp / "model"),
     ["one.csv", "needs at least 2 bars per symbol"]),
    ("price_1e308", lambda lab, tmp: (_outlier_csv(lab, tmp), tmp / "model"),
     ["outlier.csv", "column 'high'", "row 150", "outlier"]),
]


@pytest.mark.parametrize("case, setup, needles", BASELINE_FIT, ids=[c[0] for c in BASELINE_FIT])
def test_baseline_fit(case, setup, needles, lab, tmp_path, capsys):
    data, out = setup(lab, tmp_path)
    before = snapshot(out) if out.exists() else None
    code, _, err = run(["baseline", "fit", "bootstrap", "--data", data, "--freq", "daily", "--out", out,
                        "--no-progress"], capsys)
    assert code == 2
    assert "pass --freq" not in one_line(err, *needles)
    assert (snapshot(out) == before) if before is not None else not out.exists()


# --- datasets check -------------------------------------------------------------------------------

HEAD = "timestamp,open,high,low,close,volume"


def bars(offsets: list[str]) -> list[str]:
    return [HEAD] + [f"2024-01-01 {h:02d}:00:00{o},10,11,9,10.5,100" for h, o in enumerate(offsets)]


def prices(col: str, row: int, value: float) -> list[str]:
    df = goog(120)
    df.loc[row, col] = value
    df["timestamps"] = df["timestamps"].dt.strftime("%Y-%m-%d")
    return df.to_csv(index=False).splitlines()


DATASETS_CHECK = [
    # (id, file lines, needles)
    ("mixed_offsets", bars(["+00:00", "+00:00", "+02:00", "+00:00"]),
     ["column 'timestamp'", "row 2", "offset +02:00", "mixes timezone offsets"]),
    ("offset_and_none", bars(["+01:00", "", "+01:00"]), ["row 1", "no offset", "mixes timezone offsets"]),
    ("none_then_z", bars(["", "", "Z"]), ["row 2", "offset +00:00", "mixes"]),
    ("three_offsets", bars(["-04:00", "-05:00", "-03:00"]), ["row 2", "offset -03:00", "mixes"]),
    ("price_1e308", prices("high", 50, 1e308), ["column 'high'", "row 50", "outlier"]),
    ("price_tiny", prices("low", 7, 1e-300), ["column 'low'", "row 7", "below the median close"]),
    ("close_unit_mixup", prices("close", 99, 3.0e8), ["column 'close'", "row 99", "outlier"]),
]


@pytest.mark.parametrize("case, lines, needles", DATASETS_CHECK, ids=[c[0] for c in DATASETS_CHECK])
def test_datasets_check(case, lines, needles, tmp_path, capsys):
    path = tmp_path / f"{case}.csv"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run(["datasets", "check", path, "--freq", "daily"], capsys)
    assert code == 2
    one_line(err, str(path), *needles)


@pytest.mark.parametrize("offsets, first", [
    (["+02:00"] * 3, "2023-12-31 22:00:00"), (["Z", "+00:00", "+0000"], "2024-01-01 00:00:00"),
    ([""] * 3, "2024-01-01 00:00:00"),
    (["-04:00", "-04:00", "-05:00"], "2024-01-01 04:00:00"),  # local time with daylight saving: one clock
])
def test_one_clock_is_accepted_and_converted_to_utc(offsets, first, tmp_path, capsys):
    path = tmp_path / "ok.csv"
    path.write_text("\n".join(bars(offsets)) + "\n")
    code, out, err = run(["datasets", "check", path, "--freq", "1h"], capsys)
    assert code == 0, err
    assert first in out


@pytest.mark.parametrize("name", dataset_names())
def test_embedded_datasets_pass_the_outlier_check(name):
    from kronos_synth.data.validation import validate_klines

    validate_klines(load_dataset(name))


def test_shared_crypto_files_pass(crypto_dir):
    from kronos_synth.data.readers import read_klines

    for f in sorted(os.listdir(crypto_dir)):
        if f.endswith(".csv"):
            read_klines(os.path.join(crypto_dir, f))


# --- augment --------------------------------------------------------------------------------------

AUGMENT = [
    # (id, setup → --synthetic, real, needles)
    ("manifest_is_a_list", damaged("syn6", write("_manifest.json", "[]")), "goog-daily",
     ["_manifest.json", "not a JSON object"]),
    ("parts_of_two_runs", mixed_runs, "goog-daily", ["parts of different runs"]),
    ("one_real_bar_with_freq", lambda lab, tmp: lab / "syn6", "ONE", ["one.csv", "needs at least 2 bars"]),
]


@pytest.mark.parametrize("case, setup, real, needles", AUGMENT, ids=[c[0] for c in AUGMENT])
def test_augment(case, setup, real, needles, lab, tmp_path, capsys):
    out = tmp_path / "train.parquet"
    code, _, err = run(["augment", "--real", _real(lab, tmp_path, real), "--synthetic", setup(lab, tmp_path),
                        "--ratio", "1", "--freq", "daily", "--out", out], capsys)
    assert code == 2
    assert "pass --freq" not in one_line(err, *needles)
    assert not out.exists()


# --- generate (the checkpoint's kronos_synth.json) ---------------------------------------------------

GENERATE_MAX_CONTEXT = [0, -3, 12.5, "512", None, True]


@pytest.mark.parametrize("value", GENERATE_MAX_CONTEXT, ids=[repr(v) for v in GENERATE_MAX_CONTEXT])
def test_generate_refuses_a_bad_max_context(value, tmp_path, capsys):
    model = _kronos_checkpoint(None, tmp_path)
    shutil.copytree(default_model_dir() / "tokenizer", tmp_path / "tokenizer")
    sidecar = model / "kronos_synth.json"
    sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()), max_context=value)))
    out = tmp_path / "synth"
    code, _, err = run(["generate", "--n", "2", "--freq", "daily", "--model", model, "--out", out,
                        "--no-progress"], capsys)
    assert code == 2
    one_line(err, str(sidecar), "'max_context'", "not a positive whole number")
    assert not out.exists()
