"""Training settings (`TokenizerTrainingConfig`, `PredictorTrainingConfig`): one default per setting, shared by the
library and the CLI; bad values refused when the config is made, naming the field; run fingerprints unchanged."""

from __future__ import annotations

import dataclasses

import click
import pytest
from _train_util import tiny_data, tiny_tokenizer

import kronos_synth.model.pretrained as pretrained
import kronos_synth.train.predictor as predictor_module
import kronos_synth.train.tokenizer as tokenizer_module
from kronos_synth.cli import cli
from kronos_synth.data.errors import InputError
from kronos_synth.train import (
    PredictorTrainingConfig,
    TokenizerTrainingConfig,
    TrainingData,
    train_predictor,
    train_tokenizer,
)

COMMANDS = [("tokenizer", TokenizerTrainingConfig), ("model", PredictorTrainingConfig)]


def _options(command: str) -> dict[str, click.Option]:
    cmd = cli.get_command(click.Context(cli), "train").get_command(click.Context(cli), command)
    return {p.name: p for p in cmd.params if isinstance(p, click.Option)}


@pytest.mark.parametrize("command, cls", COMMANDS)
def test_cli_defaults_are_the_config_defaults(command, cls):
    options = _options(command)
    settings = [f.name for f in dataclasses.fields(cls) if f.name != "overrides"]  # overrides: the size flags
    for name in settings:
        assert name in options, f"train {command} has no option for {name}"
        assert options[name].default == cls.default(name), name


def test_batch_size_defaults_written_once():
    # the library's 64 is the tokenizer's default on the command line too (it used to say 32 there)
    assert TokenizerTrainingConfig().batch_size == 64 == _options("tokenizer")["batch_size"].default
    assert PredictorTrainingConfig().batch_size == 32 == _options("model")["batch_size"].default


def test_dependent_defaults_resolve_in_the_loop():
    assert TokenizerTrainingConfig().loop.steps == 1000 and TokenizerTrainingConfig(epochs=2).loop.steps is None
    assert TokenizerTrainingConfig().loop.lr == 1e-3 and PredictorTrainingConfig().loop.lr == 5e-4
    assert TokenizerTrainingConfig(init="x").loop.lr == 1e-5 == PredictorTrainingConfig(init="x").loop.lr
    assert TokenizerTrainingConfig(lr=3e-4, init="x").loop.lr == 3e-4
    assert (TokenizerTrainingConfig().loop.grad_clip, PredictorTrainingConfig().loop.grad_clip) == (2.0, 3.0)
    # replace() keeps working with the unresolved fields
    assert dataclasses.replace(TokenizerTrainingConfig(), epochs=1.5).loop.epochs == 1.5
    assert TokenizerTrainingConfig(overrides={"d_model": 32, "n_heads": None}).overrides == {"d_model": 32}
    with pytest.raises(KeyError):
        TokenizerTrainingConfig.default("no_such_setting")
    assert hash(TokenizerTrainingConfig(overrides={"d_model": 32}, representation={"representation": "geometry"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        TokenizerTrainingConfig().steps = 3  # type: ignore[misc]


BAD = [
    (TokenizerTrainingConfig, dict(steps=0), "steps"),
    (TokenizerTrainingConfig, dict(steps=2.5), "steps"),
    (TokenizerTrainingConfig, dict(epochs=0), "epochs"),
    (TokenizerTrainingConfig, dict(steps=2, epochs=1), ("steps", "epochs")),
    (TokenizerTrainingConfig, dict(batch_size=0), "batch_size"),
    (TokenizerTrainingConfig, dict(lr=-1.0), "lr"),
    (TokenizerTrainingConfig, dict(lr=float("nan")), "lr"),
    (TokenizerTrainingConfig, dict(eval_every=0), "eval_every"),
    (TokenizerTrainingConfig, dict(patience=-1), "patience"),
    (TokenizerTrainingConfig, dict(lookback=0), "lookback"),
    (TokenizerTrainingConfig, dict(horizon=-3), "horizon"),
    (TokenizerTrainingConfig, dict(freq="fortnightly"), "freq"),
    (TokenizerTrainingConfig, dict(tail_weight=-1.0), "tail_weight"),
    (TokenizerTrainingConfig, dict(representation="candles"), "representation"),
    (TokenizerTrainingConfig, dict(init="x", config="tiny"), ("init", "config")),
    (TokenizerTrainingConfig, dict(init="x", overrides={"d_model": 8}), ("init", "d_model")),
    (PredictorTrainingConfig, dict(validation="test"), "validation"),
    (PredictorTrainingConfig, dict(s2_lr_scale=0), "s2_lr_scale"),
    (PredictorTrainingConfig, dict(regime_lr_scale=-1.0), "regime_lr_scale"),
    (PredictorTrainingConfig, dict(batch_size=-2), "batch_size"),
    (PredictorTrainingConfig, dict(init="x", config="small"), ("init", "config")),
]


@pytest.mark.parametrize("cls, kwargs, param", BAD, ids=[f"{c.__name__[:4]}-{next(iter(k))}" for c, k, _ in BAD])
def test_bad_settings_raise_input_error_naming_the_field(cls, kwargs, param):
    with pytest.raises(InputError) as e:
        cls(**kwargs)
    assert e.value.param == param
    assert (param if isinstance(param, str) else param[0]) in str(e.value)


def test_trainers_take_only_their_own_config(tmp_path):
    with pytest.raises(TypeError, match="TokenizerTrainingConfig"):
        train_tokenizer(["goog-daily"], tmp_path / "x", PredictorTrainingConfig())
    with pytest.raises(TypeError, match="PredictorTrainingConfig"):
        train_predictor(["goog-daily"], tmp_path / "x", TokenizerTrainingConfig(), tokenizer="t")
    assert not (tmp_path / "x").exists()


# --- fingerprints ------------------------------------------------------------------------------
# Computed on the code before these classes existed (keyword settings), with the same stubs: the data
# description and the tokenizer's weights hash (which depend on the environment, not on the settings) replaced;
# the predictor trains on a tiny levels tokenizer (4 + 4 bits), so the embedded model plays no part.
PINNED = {
    "tok_tiny": ("557714366d37c2fd8fff8675d4ffed65bfeff68718d0a4e1a6d228a7af78f8cd",
                 "LoopConfig(steps=8, epochs=None, batch_size=16, lr=0.001, weight_decay=0.1, betas=(0.9, 0.95), "
                 "grad_clip=2.0, pct_start=0.03, div_factor=10.0, eval_every=4, patience=5, seed=0, lr_scale=())"),
    "tok_tail_epochs": ("9c790c7e83fd5cd7a3cb110935fb3cd40141856070b562e95dd47b0c6ab22974",
                        "LoopConfig(steps=None, epochs=2.0, batch_size=64, lr=0.0003, weight_decay=0.1, "
                        "betas=(0.9, 0.95), grad_clip=2.0, pct_start=0.03, div_factor=10.0, eval_every=100, "
                        "patience=0, seed=5, lr_scale=())"),
    "pred_sampled_s2": ("4d84126806050d977e703dc3ca92b5915562ff579cb6c0efc324b335f85697b0",
                        "LoopConfig(steps=3, epochs=None, batch_size=32, lr=0.0005, weight_decay=0.1, "
                        "betas=(0.9, 0.95), grad_clip=3.0, pct_start=0.03, div_factor=10.0, eval_every=100, "
                        "patience=5, seed=0, lr_scale=(('dep_layer.', 10.0), ('head.proj_s2.', 10.0)))"),
    "pred_defaults": ("75b7c3b5e8c31b199a1493851f185420315b680dfea245531d3b3cd3a6b6df1c",
                      "LoopConfig(steps=1000, epochs=None, batch_size=32, lr=0.0005, weight_decay=0.1, "
                      "betas=(0.9, 0.95), grad_clip=3.0, pct_start=0.03, div_factor=10.0, eval_every=100, "
                      "patience=5, seed=0, lr_scale=())"),
}
CASES = {
    "tok_tiny": TokenizerTrainingConfig(config="tiny", steps=8, batch_size=16, eval_every=4),
    "tok_tail_epochs": TokenizerTrainingConfig(config="tiny", tail_weight=0.5, epochs=2.0, lr=3e-4, seed=5,
                                               patience=0),
    "pred_sampled_s2": PredictorTrainingConfig(config="tiny", overrides={"d_model": 16, "n_heads": 2}, steps=3,
                                               s2_lr_scale=10.0, teacher_forcing=False),
    "pred_defaults": PredictorTrainingConfig(config="tiny"),
}


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tok"
    tiny_tokenizer(out, tiny_data(), steps=1, batch_size=4, eval_every=1)
    return out


@pytest.mark.parametrize("case", sorted(PINNED))
def test_run_fingerprint_is_unchanged(case, tokenizer, monkeypatch, tmp_path):
    """Existing training folders resume and benchmark stage keys stay: same settings, same fingerprint."""
    seen = {}

    def fake_loop(task, train, val, loop, out, *, run_fingerprint, **kw):
        seen.update(fingerprint=run_fingerprint, loop=repr(loop))
        raise _Stop

    for module in (tokenizer_module, predictor_module):
        monkeypatch.setattr(module, "run_loop", fake_loop)
    monkeypatch.setattr(TrainingData, "describe", lambda self: {"data": "stub"})
    monkeypatch.setattr(pretrained, "weights_sha256", lambda folder: "stub-sha256")
    config = CASES[case]
    with pytest.raises(_Stop):
        if isinstance(config, TokenizerTrainingConfig):
            train_tokenizer(tiny_data(), tmp_path / "run", config)
        else:
            train_predictor(tiny_data(), tmp_path / "run", config, tokenizer=str(tokenizer))
    assert (seen["fingerprint"], seen["loop"]) == PINNED[case]
