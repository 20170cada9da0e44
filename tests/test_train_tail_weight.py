"""The tail-weighted tokenizer loss: the reference loss at weight 0, large values weighed up above it."""

import json

import pytest
import torch
from _train_util import tiny_data, tiny_tokenizer

from kronos_synth.model.tokenizer import KronosTokenizer
from kronos_synth.train import tokenizer_loss
from kronos_synth.train.configs import resolve_config


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return KronosTokenizer(**resolve_config("tokenizer", "tiny", {})).eval()


def test_weight_zero_is_the_reference_loss(tok):
    x = torch.randn(4, 20, tok.d_in, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = tok(x)
        ref = (torch.nn.functional.mse_loss(out.recon_coarse, x) + torch.nn.functional.mse_loss(out.recon_full, x)
               + out.bsq_loss.total) / 2
        torch.manual_seed(0)
        loss, parts = tokenizer_loss(tok, x, 0.0)
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)


def test_large_values_weigh_more(tok):
    # the same inputs with one 6-sigma value: the weighted reconstruction error grows more than the plain one
    x = torch.randn(4, 20, tok.d_in, generator=torch.Generator().manual_seed(2)).clamp(-2, 2)
    x_tail = x.clone()
    x_tail[0, 5, 0] = 6.0
    with torch.no_grad():
        plain = [tokenizer_loss(tok, v, 0.0)[1]["recon_full"] for v in (x, x_tail)]
        tail = [tokenizer_loss(tok, v, 1.0)[1]["recon_full"] for v in (x, x_tail)]
    assert tail[1] / tail[0] > 1.5 * plain[1] / plain[0]


def test_tail_weight_is_recorded_and_changes_the_run(tmp_path):
    td = tiny_data()
    tiny_tokenizer(tmp_path / "plain", td)
    tiny_tokenizer(tmp_path / "tail", td, tail_weight=0.5)
    plain = json.loads((tmp_path / "plain" / "training.json").read_text())
    tail = json.loads((tmp_path / "tail" / "training.json").read_text())
    assert "tail_weight" not in json.dumps(plain)
    assert '"tail_weight": 0.5' in json.dumps(tail)
    w0 = (tmp_path / "plain" / "model.safetensors").read_bytes()
    w1 = (tmp_path / "tail" / "model.safetensors").read_bytes()
    assert w0 != w1


def test_negative_tail_weight_is_an_input_error(tmp_path):
    from kronos_synth.data.errors import InputError

    with pytest.raises(InputError, match="tail_weight must be ≥ 0") as e:  # the library names the parameter
        tiny_tokenizer(tmp_path / "bad", tiny_data(), tail_weight=-1.0)
    assert e.value.param == "tail_weight" and not (tmp_path / "bad").exists()
