"""The embedded default model: shipped in the package, small, self-describing, usable offline."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kronos_synth.data.frequency import get_preset
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.model.pretrained import default_model_dir, load_model_pair

MANIFEST = Path(__file__).resolve().parents[1] / "recipes" / "pretrain-corpus-manifest.json"
FREQS = ["5min", "15min", "30min", "1h", "4h", "daily"]


def test_default_model_is_shipped_small_and_recorded():
    root = default_model_dir()
    files = {part: {f.name for f in (root / part).iterdir()} for part in ("tokenizer", "model")}
    for part, names in files.items():
        assert {"config.json", "model.safetensors", "kronos_synth.json", "training.json"} <= names, part
        assert "checkpoint-last" not in names  # no optimizer state in the package
    total = sum((root / p / "model.safetensors").stat().st_size for p in files)
    assert total <= 20 * 2 ** 20
    side = json.loads((root / "model" / "kronos_synth.json").read_text())
    assert side["tokenizer"] == "../tokenizer" and side["representation"] == "geometry" and side["center_returns"]
    assert side["freqs"] == FREQS  # pretrained from 5-minute to daily bars
    assert side["max_context"] >= max(get_preset(f).window for f in FREQS)  # every preset window fits
    manifest_sha = hashlib.sha256(MANIFEST.read_bytes()).hexdigest()
    # The predictor's regime continuation ran on the same corpus rebuilt on another machine under /work/runs: its
    # manifest equals the committed one file for file (sha256, bars, split) and differs only in the source paths
    # it records (absolute there), so its bytes hash to this (docs/pretraining.md, "The regime input").
    rebuilt_sha = "1da8b2fd083af1a6f8f7cec33fffa991d5809dc89c27b2b597705766f1a73e48"
    for part in ("tokenizer", "model"):
        rec = json.loads((root / part / "training.json").read_text())
        # the predictor continues the 4 800-step seed-0 run with the regime input, on seed 1's batches
        assert rec["finished"] and rec["seed"] == {"tokenizer": 0, "model": 1}[part]
        assert rec["data"]["manifest_sha256"] == {"tokenizer": manifest_sha, "model": rebuilt_sha}[part]
        assert rec["data"]["freqs"] == FREQS
        sha = hashlib.sha256((root / part / "model.safetensors").read_bytes()).hexdigest()
        assert rec["weights_sha256"] == sha  # the record describes the shipped weights
    pair = load_model_pair()
    assert pair.model.s1_bits == pair.tokenizer.s1_bits and pair.max_context == side["max_context"]
    assert pair.model.regime_buckets == 15  # the volatility-regime input (docs/models.md)


def test_pretraining_corpus_kept_benchmark_test_periods_out():
    manifest = json.loads(MANIFEST.read_text())
    embargo = manifest["settings"]["embargo"]
    for rule in ("USA500IDXUSD@2014-06-26..2018-12-31", "USATECHIDXUSD@2014-06-26..2018-12-31",
                 "EURUSD@2017-11-29..2018-02-07"):
        assert rule in embargo
    for f in manifest["files"]:
        if f["instrument"] in ("USA500IDXUSD", "USATECHIDXUSD", "USA30IDXUSD", "EURUSD"):
            assert f["rows_embargoed"] > 0, f["path"]
    held = {k for k, v in manifest["instruments"].items() if v["split"] == "holdout"}
    assert 0.08 < len(held) / len(manifest["instruments"]) < 0.16
    assert all("train" not in f for f in manifest["files"] if f["instrument"] in held)


@pytest.mark.slow
def test_generate_uses_the_embedded_default_offline(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", KRONOS_SYNTH_NO_PROGRESS="1")
    out = tmp_path / "synth"
    proc = subprocess.run([sys.executable, "-m", "kronos_synth.cli", "generate", "--n", "64", "--freq", "daily",
                           "--seed", "1", "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "embedded default" in proc.stderr
    ds = read_synthetic(out)
    assert ds.n_sequences == 64
    bars = ds.generated()
    assert len(bars) == 64 * 35 and (bars["close"] > 0).all()
    # geometry representation: every raw bar is valid by construction (no --repair)
    assert ds.metadata["representation"] == "geometry"
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    vwap = bars["amount"] / bars["volume"]
    assert ((vwap >= bars["low"] * (1 - 1e-9)) & (vwap <= bars["high"] * (1 + 1e-9)))[bars["volume"] > 0].all()


@pytest.mark.slow
def test_the_mission_command_runs_offline_at_15_minutes(tmp_path):
    """`generate --freq 15min` with no --data: the embedded 15-minute dataset and the pretrained default."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", KRONOS_SYNTH_NO_PROGRESS="1")
    out = tmp_path / "synth"
    proc = subprocess.run([sys.executable, "-m", "kronos_synth.cli", "generate", "--n", "48", "--freq", "15min",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "data: crypto-15m" in proc.stderr and "raw invalid bars 0.00 %" in proc.stdout
    ds = read_synthetic(out)
    assert ds.n_sequences == 48 and ds.metadata["freq"] == "15min" and ds.metadata["horizon"] == 96
    assert set(ds.frame["symbol"]) <= {"BTCUSDT", "ETHUSDT"}
