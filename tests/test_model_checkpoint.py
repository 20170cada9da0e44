"""Checkpoint folders, hub ids and the one-line errors for bad checkpoints."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from kronos_synth.data.errors import InputError
from kronos_synth.model import Kronos, KronosCheckpointError, KronosTokenizer, check_compatible

TOK = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
           attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
           zeta=0.05, group_size=4)
PRED = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
            attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    return Kronos(**PRED).save_pretrained(tmp_path / "pred")


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, InputError)
    return text


def test_save_format_and_roundtrip(folder, tmp_path):
    config = json.loads((folder / "config.json").read_text())
    assert list(config) == sorted(PRED) and config == {**PRED, "ffn_dropout_p": 0.0}
    assert isinstance(config["ffn_dropout_p"], float) and config["learn_te"] is True
    state = load_file(str(folder / "model.safetensors"))
    assert "transformer.0.self_attn.rotary.inv_freq" in state  # persistent buffers included
    assert all(v.dtype == torch.float32 for v in state.values())
    model = Kronos.from_pretrained(str(folder))  # a local folder by path (str or Path)
    assert not model.training
    for k, v in Kronos(**PRED).state_dict().items():
        assert v.shape == state[k].shape
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # deterministic: saving again gives the same bytes
    again = model.save_pretrained(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert (again / "config.json").read_text() == (folder / "config.json").read_text()


def test_bf16_model_saves_float32(tmp_path):
    tok = KronosTokenizer(**TOK).to(torch.bfloat16)
    state = load_file(str(tok.save_pretrained(tmp_path) / "model.safetensors"))
    assert state["embed.weight"].dtype == torch.float32
    assert state["tokenizer.bsq.basis"].dtype == torch.int64  # the reference keeps int buffers


def test_optional_buffers_may_be_absent_and_bin_fallback(folder):
    state = load_file(str(folder / "model.safetensors"))
    slim = {k: v for k, v in state.items() if not k.endswith("rotary.inv_freq")}
    (folder / "model.safetensors").unlink()
    torch.save(slim, folder / "pytorch_model.bin")
    model = Kronos.from_pretrained(folder)
    assert torch.equal(model.transformer[0].self_attn.rotary.inv_freq,
                       state["transformer.0.self_attn.rotary.inv_freq"])
    assert torch.equal(model.head.proj_s1.weight, state["head.proj_s1.weight"])


def _rewrite_state(folder, fn):
    state = load_file(str(folder / "model.safetensors"))
    fn(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_parameter_is_named(folder):
    _rewrite_state(folder, lambda s: s.pop("transformer.1.ffn.w2.weight"))
    with pytest.raises(KronosCheckpointError) as err:
        Kronos.from_pretrained(folder)
    assert "missing parameter 'transformer.1.ffn.w2.weight'" in _one_line(err)


def test_unexpected_parameter_is_named(folder):
    _rewrite_state(folder, lambda s: s.update({"transformer.2.norm1.weight": torch.ones(32)}))
    with pytest.raises(KronosCheckpointError) as err:
        Kronos.from_pretrained(folder)
    assert "unexpected parameter 'transformer.2.norm1.weight'" in _one_line(err)


def test_wrong_shape_is_named(folder):
    _rewrite_state(folder, lambda s: s.update({"head.proj_s2.weight": torch.zeros(32, 32)}))
    with pytest.raises(KronosCheckpointError) as err:
        Kronos.from_pretrained(folder)
    text = _one_line(err)
    assert "'head.proj_s2.weight'" in text and "(32, 32)" in text and "(16, 32)" in text


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(max_context=512), "unknown config key 'max_context'"),
    (lambda c: c.pop("n_heads"), "missing config key 'n_heads'"),
    (lambda c: c.update(n_layers="2"), "config key 'n_layers' must be int"),
    (lambda c: c.update(n_heads=3), "heads"),
])
def test_bad_config_is_named(folder, edit, message):
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KronosCheckpointError) as err:
        Kronos.from_pretrained(folder)
    assert message in _one_line(err)


def test_config_weights_mismatch_gives_shape_error(folder):
    """A config whose bits disagree with the weights: the first wrong shape is named."""
    config = json.loads((folder / "config.json").read_text())
    config["s1_bits"] = 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KronosCheckpointError, match=r"'embedding\.emb_s1\.weight' has shape \(16, 32\)"):
        Kronos.from_pretrained(folder)


def test_tokenizer_predictor_bit_mismatch():
    tok = KronosTokenizer(**{**TOK, "s1_bits": 5, "s2_bits": 3})
    model = Kronos(**PRED)
    with pytest.raises(KronosCheckpointError, match="'s1_bits' \\(tokenizer 5, predictor 4\\)"):
        check_compatible(tok, model)
    check_compatible(KronosTokenizer(**TOK), model)  # matching bits pass


def test_missing_folder_and_wrong_class(tmp_path):
    with pytest.raises(KronosCheckpointError, match="no such checkpoint folder"):
        Kronos.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(KronosCheckpointError, match="no config.json"):
        Kronos.from_pretrained(tmp_path)
    with pytest.raises(KronosCheckpointError, match="is a tokenizer checkpoint"):
        Kronos.from_pretrained("NeoQuasar/Kronos-Tokenizer-base")
    # a tokenizer folder handed to the predictor class: unknown config key
    folder = KronosTokenizer(**TOK).save_pretrained(tmp_path / "tok")
    with pytest.raises(KronosCheckpointError, match="unknown config key 'beta'"):
        Kronos.from_pretrained(folder)


def _offline_env(monkeypatch, home):
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_hub_id_offline_with_empty_cache_is_one_clear_line(monkeypatch, tmp_path):
    _offline_env(monkeypatch, tmp_path)
    with pytest.raises(KronosCheckpointError) as err:
        KronosTokenizer.from_pretrained("NeoQuasar/Kronos-Tokenizer-base")
    text = _one_line(err)
    assert text.startswith("NeoQuasar/Kronos-Tokenizer-base")
    assert "connect to the internet once" in text and "local checkpoint folder" in text
    with pytest.raises(KronosCheckpointError, match="Kronos-small@v1"):  # short names and revisions
        Kronos.from_pretrained("Kronos-small", revision="v1")


def test_hub_id_loads_from_the_cache_offline(monkeypatch, tmp_path):
    """A repo already in the HF cache (as `snapshot_download` leaves it) loads without network."""
    _offline_env(monkeypatch, tmp_path)
    torch.manual_seed(0)
    tok = KronosTokenizer(**TOK)
    repo = tmp_path / "hub" / "models--NeoQuasar--Kronos-Tokenizer-base"
    commit = "0123456789abcdef0123456789abcdef01234567"
    tok.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = KronosTokenizer.from_pretrained("NeoQuasar/Kronos-Tokenizer-base")
    assert torch.equal(loaded.embed.weight, tok.embed.weight)
    loaded = KronosTokenizer.from_pretrained("Kronos-Tokenizer-base", revision=commit)
    assert torch.equal(loaded.head.bias, tok.head.bias)
