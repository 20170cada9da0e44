"""The embedded default model: shipped in the package, small, self-describing, usable offline."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.model.pretrained import default_model_dir, load_model_pair

DEFAULT_DATA = ["sp500-daily", "nasdaq-daily", "goog-daily"]


def test_default_model_is_shipped_small_and_recorded():
    root = default_model_dir()
    files = {part: {f.name for f in (root / part).iterdir()} for part in ("tokenizer", "model")}
    for part, names in files.items():
        assert {"config.json", "model.safetensors", "kronos_synth.json", "training.json"} <= names, part
        assert "checkpoint-last" not in names  # no optimizer state in the package
    total = sum((root / p / "model.safetensors").stat().st_size for p in files)
    assert total <= 10 * 2 ** 20
    side = json.loads((root / "model" / "kronos_synth.json").read_text())
    assert side["tokenizer"] == "../tokenizer" and side["representation"] == "geometry"
    assert side["max_context"] >= 131  # daily lookback 96 + horizon 35
    for part in ("tokenizer", "model"):
        rec = json.loads((root / part / "training.json").read_text())
        assert rec["finished"] and rec["seed"] == 0
        assert [s["data"] for s in rec["data"]["sources"]] == DEFAULT_DATA
        for src in rec["data"]["sources"]:
            for sym in src["symbols"]:
                assert sym["train_last"] < sym["test_first"]  # trained on the train periods only
        sha = hashlib.sha256((root / part / "model.safetensors").read_bytes()).hexdigest()
        assert rec["weights_sha256"] == sha  # the record describes the shipped weights
    pair = load_model_pair()
    assert pair.model.s1_bits == pair.tokenizer.s1_bits and pair.max_context == side["max_context"]


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
