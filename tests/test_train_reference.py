"""Checkpoints written by `kronos-synth train` are reference-format: the reference classes load
them and compute the same numbers."""

import json

import numpy as np
import pytest
import torch
from _train_util import tiny_data, tiny_predictor, tiny_tokenizer

from kronos_synth.model import Kronos, KronosTokenizer
from kronos_synth.model.configs import PREDICTOR_KEYS, TOKENIZER_KEYS
from kronos_synth.model.pretrained import load_model_pair


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    td = tiny_data()
    tok = tiny_tokenizer(root / "tokenizer", td)
    model = tiny_predictor(root / "model", root / "tokenizer", td)
    return root, td, tok, model


def test_reference_classes_load_and_agree(trained):
    ref = pytest.importorskip("model")  # the reference release (kronos-model-arch)
    root, td, _, _ = trained
    ours_tok, ours = KronosTokenizer.from_pretrained(root / "tokenizer"), Kronos.from_pretrained(root / "model")
    ref_tok = ref.KronosTokenizer.from_pretrained(str(root / "tokenizer")).eval()
    ref_model = ref.Kronos.from_pretrained(str(root / "model")).eval()
    x, stamps = (torch.from_numpy(a) for a in td.val.batch(np.arange(6)))
    with torch.no_grad():
        s1, s2 = ours_tok.encode(x, half=True)
        r1, r2 = ref_tok.encode(x, half=True)
        assert torch.equal(s1, r1) and torch.equal(s2, r2)
        assert len(torch.unique(s1)) > 3  # trained ids are not constant
        torch.testing.assert_close(ours_tok.decode((s1, s2), half=True), ref_tok.decode((r1, r2), half=True),
                                   atol=1e-5, rtol=0)
        args = (s1[:, :-1], s2[:, :-1], stamps[:, :-1])
        o1, o2 = ours(*args, use_teacher_forcing=True, s1_targets=s1[:, 1:])
        t1, t2 = ref_model(*args, use_teacher_forcing=True, s1_targets=s1[:, 1:])
    torch.testing.assert_close(o1, t1, atol=1e-5, rtol=0)
    torch.testing.assert_close(o2, t2, atol=1e-5, rtol=0)


def test_folders_hold_exact_configs_sidecars_and_records(trained):
    root, td, tok, model = trained
    tok_cfg = json.loads((root / "tokenizer" / "config.json").read_text())
    model_cfg = json.loads((root / "model" / "config.json").read_text())
    assert list(tok_cfg) == sorted(TOKENIZER_KEYS) and list(model_cfg) == sorted(PREDICTOR_KEYS)
    assert isinstance(tok_cfg["beta"], float) and model_cfg["s1_bits"] == tok_cfg["s1_bits"] == 4
    side = json.loads((root / "model" / "kronos_synth.json").read_text())
    assert side == {"freq": "daily", "horizon": 10, "kind": "predictor", "lookback": 40, "max_context": 50,
                    "representation": "levels", "clip": 5.0, "tokenizer": "../tokenizer"}
    tok_side = json.loads((root / "tokenizer" / "kronos_synth.json").read_text())
    assert tok_side == {"kind": "tokenizer", "representation": "levels", "clip": 5.0, "freq": "daily",
                        "lookback": 40, "horizon": 10}
    # generate finds the pair through the sidecar
    pair = load_model_pair(str(root / "model"))
    assert pair.max_context == 50 and pair.tokenizer_id.endswith("tokenizer")
    rec = json.loads((root / "model" / "training.json").read_text())
    assert rec["kind"] == "predictor" and rec["seed"] == 0 and rec["steps_done"] == 8
    assert [h["step"] for h in rec["history"]] == [0, 4, 8]
    assert all(np.isfinite(h["val_loss"]) for h in rec["history"])
    assert rec["history"][0]["train_loss"] is None and rec["history"][-1]["train_loss"] > 0
    src = rec["data"]["sources"][0]
    assert src["data"] == "goog-daily" and len(next(iter(src["files"].values()))) == 64  # sha256
    sym = src["symbols"][0]
    assert sym["symbol"] == "GOOG" and sym["train_last"] < sym["test_first"]
    trec = json.loads((root / "tokenizer" / "training.json").read_text())
    usage = trec["codebook_usage"]["val"]
    assert usage["s1_vocab"] == 16 and 0 < usage["s1_usage"] <= 1 and 0 < usage["s2_usage"] <= 1
    assert trec["training"]["grad_clip"] == 2.0 and rec["training"]["grad_clip"] == 3.0
    assert trec["training"]["weight_decay"] == 0.1
