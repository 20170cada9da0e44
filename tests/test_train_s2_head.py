"""The s2 head's own learning rate (`s2_lr_scale`) and its parameter groups."""

import dataclasses
import json

import pytest
import torch
from _train_util import tiny_data, tiny_predictor, tiny_tokenizer
from safetensors.torch import load_file

from kronos_synth.cli import main
from kronos_synth.data.errors import InputError
from kronos_synth.model.kronos import Kronos
from kronos_synth.train.config import PredictorTrainingConfig
from kronos_synth.train.configs import resolve_config
from kronos_synth.train.loop import param_groups
from kronos_synth.train.predictor import S2_HEAD


def _tiny_model() -> Kronos:
    torch.manual_seed(0)
    return Kronos(**resolve_config("predictor", "tiny", {}))


def test_without_lr_scale_one_group_holds_every_parameter():
    m = _tiny_model()
    groups = param_groups(m, PredictorTrainingConfig(lr=3e-4).loop)
    assert len(groups) == 1 and groups[0]["lr"] == 3e-4
    assert len(groups[0]["params"]) == len(list(m.parameters()))


def test_s2_head_prefixes_get_their_own_group_at_the_scaled_lr():
    m = _tiny_model()
    loop = PredictorTrainingConfig(lr=1e-4, s2_lr_scale=10).loop
    assert loop.lr_scale == tuple((p, 10.0) for p in S2_HEAD)
    groups = param_groups(m, loop)
    assert [g["lr"] for g in groups] == [1e-4, pytest.approx(1e-3)]
    s2 = {id(p) for n, p in m.named_parameters() if n.startswith(S2_HEAD)}
    assert s2 and {id(p) for p in groups[1]["params"]} == s2
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(m.parameters()))


def test_unknown_prefix_is_an_input_error():
    with pytest.raises(InputError, match="no_such_layer"):
        param_groups(_tiny_model(), dataclasses.replace(PredictorTrainingConfig().loop,
                                                        lr_scale=(("no_such_layer.", 2.0),)))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    tiny_tokenizer(root / "tok", tiny_data(16))
    return root / "tok"


def _moved(init: dict, out, names) -> float:
    """Mean relative change of the named tensors between two weight files."""
    new = load_file(str(out / "model.safetensors"))
    return float(sum(((new[n] - init[n]).norm() / (init[n].norm() + 1e-8)).item() for n in names) / len(names))


def test_scaled_s2_head_moves_further_than_the_trunk(tokenizer, tmp_path):
    td = tiny_data(16)
    base = tiny_predictor(tmp_path / "base", tokenizer, td, steps=2, eval_every=2)
    init = load_file(str(base.out / "model.safetensors"))
    s2 = [n for n in init if n.startswith(S2_HEAD)]
    trunk = [n for n in init if n.startswith("transformer.")]
    runs = {}
    for scale in (1.0, 20.0):
        out = tmp_path / f"ft{scale:g}"
        tiny_predictor(out, tokenizer, td, config=None, init=str(base.out), steps=6, eval_every=6, lr=1e-4,
                       teacher_forcing=True, s2_lr_scale=scale, patience=0)
        runs[scale] = (_moved(init, out / "checkpoint-last", s2), _moved(init, out / "checkpoint-last", trunk))
        rec = json.loads((out / "training.json").read_text())
        assert rec["s2_lr_scale"] == scale and rec["teacher_forcing"] is True
    # same trunk step size, a far larger step for the s2 head
    assert runs[20.0][0] > 3 * runs[1.0][0]
    assert runs[20.0][1] < 3 * runs[1.0][1]


def test_cli_rejects_a_non_positive_scale_in_one_line(tokenizer, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "model", "--tokenizer", str(tokenizer), "--data", "goog-daily", "--steps", "2",
              "--s2-lr-scale", "0", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--s2-lr-scale must be > 0" in err
