"""Training in the `geometry` representation: the sidecars carry it in full, `generate` decodes through it
(valid bars by construction), and fine-tuning cannot switch representation."""

import json

import numpy as np
import pytest
from _train_util import tiny_data, tiny_predictor, tiny_tokenizer

from kronos_synth.cli import main
from kronos_synth.data.errors import InputError
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.metrics.validity import bar_validity
from kronos_synth.model.pretrained import load_model_pair, load_tokenizer
from kronos_synth.model.representation import Geometry, get_representation
from kronos_synth.train import prepare_training_data

REP = Geometry(clip=8.0, soft=2.0)  # not the default, so a lost setting would show


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    td = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=48,
                               representation=REP)
    tiny_tokenizer(root / "tokenizer", td, steps=16, eval_every=8)
    # given sources (not prepared windows), the predictor prepares them in the tokenizer's representation
    tiny_predictor(root / "model", root / "tokenizer", ["goog-daily"], lookback=40, horizon=10, steps=16,
                   eval_every=8)
    return root


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_sidecars_record_the_full_representation(geo):
    tok_side = json.loads((geo / "tokenizer" / "kronos_synth.json").read_text())
    side = json.loads((geo / "model" / "kronos_synth.json").read_text())
    for s in (tok_side, side):
        assert {k: s[k] for k in REP.to_dict()} == REP.to_dict()
        assert get_representation(s) == REP
    assert side["tokenizer"] == "../tokenizer" and side["kind"] == "predictor"
    rec = json.loads((geo / "model" / "training.json").read_text())
    assert rec["data"]["representation"] == "geometry" and rec["data"]["representation_config"] == REP.to_dict()
    assert load_tokenizer(str(geo / "model")).representation == REP
    bundle = load_tokenizer(str(geo / "tokenizer"))  # a tokenizer folder on its own
    assert bundle.representation == REP and (bundle.freq, bundle.lookback, bundle.horizon) == ("daily", 40, 10)


def test_generate_decodes_geometry_into_valid_bars(geo, tmp_path):
    config = GenerationConfig(freq="daily", lookback=40, horizon=10, seed=1, batch_size=32, device="cpu",
                              dtype="fp32")
    summary = generate_dataset(config, n=64, dataset="goog-daily", model=str(geo / "model"),
                               out=str(tmp_path / "synth"), progress=False)
    assert summary.raw_invalid_bar_rate == 0.0 and sum(summary.violations.values()) == 0
    ds = read_synthetic(str(tmp_path / "synth"))
    assert ds.metadata["representation"] == "geometry" and ds.metadata["clip"] == REP.clip
    bars = ds.to_array()
    assert bars.shape == (64, 10, 6) and np.isfinite(bars).all()
    check = bar_validity(bars)
    assert check.invalid_bars == 0 and check.counts["amount/volume outside [low, high]"] == 0
    assert (bars[..., 4] > 0).any()  # volume is generated, not zeroed
    # the first generated open continues the last real close: median seam far below a 10 % jump
    assert summary.seam_abs_gap_median < 0.1
    pair = load_model_pair(str(geo / "model"))
    assert get_representation(pair.sidecar) == REP


def test_finetuning_keeps_the_representation(geo, tmp_path):
    # the name alone inherits the checkpoint's settings
    kw = dict(init=str(geo / "tokenizer"), config=None, lookback=40, horizon=10, steps=2, eval_every=2)
    res = tiny_tokenizer(tmp_path / "ft", ["goog-daily"], representation="geometry", **kw)
    assert get_representation(json.loads((res.out / "kronos_synth.json").read_text())) == REP
    with pytest.raises(InputError, match="fine-tuning cannot change the representation"):
        tiny_tokenizer(tmp_path / "bad", ["goog-daily"], representation="levels", **kw)
    with pytest.raises(InputError, match="fine-tuning cannot change the representation"):
        tiny_tokenizer(tmp_path / "bad", tiny_data(16), **kw)  # windows prepared as levels


def test_init_mismatch_is_one_line_exit_2(geo, tmp_path, capsys):
    levels_tok = tmp_path / "levels-tok"
    tiny_tokenizer(levels_tok, tiny_data(16), steps=2, eval_every=2)
    common = ["--data", "goog-daily", "--lookback", "40", "--horizon", "10", "--steps", "2", "--no-progress"]
    code, _, err = _cli(["train", "tokenizer", "--init", str(levels_tok), "--representation", "geometry",
                         "--out", str(tmp_path / "a"), *common], capsys)
    assert code == 2 and err.count("\n") == 1 and "fine-tuning cannot change the representation" in err
    # a predictor fine-tuned from the geometry model on a levels tokenizer
    code, _, err = _cli(["train", "model", "--init", str(geo / "model"), "--tokenizer", str(levels_tok),
                         "--out", str(tmp_path / "b"), *common], capsys)
    assert code == 2 and err.count("\n") == 1 and "'geometry'" in err and "Traceback" not in err
