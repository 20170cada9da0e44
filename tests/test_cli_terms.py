"""The library speaks in its own terms, the CLI in flags; every command decides progress bars the same way."""

from __future__ import annotations

import io
import pickle
import sys
from types import SimpleNamespace

import click
import pandas as pd
import pytest

from kronos_synth.cli import command_flags, in_cli_terms, main
from kronos_synth.data.errors import InputError, KlineDataError
from kronos_synth.model.errors import KronosCheckpointError
from kronos_synth.progress import show_progress

# --- parameter names → flags ------------------------------------------------------------------


@click.command()
@click.option("--eval-every", type=int)
@click.option("--format", "fmt")
@click.option("--out")
@click.option("--tokenizer")
@click.option("--center-returns/--no-center-returns", default=None)
@click.option("--representation")
def _cmd(**kwargs) -> None:
    """A command with the option shapes the CLI uses."""


def test_command_flags_know_names_and_flag_spellings():
    flags = command_flags(_cmd)
    assert flags["eval_every"] == "--eval-every" and flags["fmt"] == flags["format"] == "--format"
    assert flags["center_returns"] == "--center-returns"


@pytest.mark.parametrize("error, shown", [
    (InputError("eval_every must be positive, got 0", param="eval_every"), "--eval-every must be positive, got 0"),
    (InputError("format must be one of parquet, csv, got 'x'", param="format"),
     "--format must be one of parquet, csv, got 'x'"),
    (InputError("center_returns needs representation='geometry'", param=("center_returns", "representation")),
     "--center-returns needs --representation geometry"),
    # `name=value` marks the references: the prose "tokenizer" stays
    (KronosCheckpointError("no tokenizer is recorded with this model", source="runs/m",
                           hint="pass tokenizer=ID_OR_DIR", param="tokenizer"),
     "runs/m: no tokenizer is recorded with this model — pass --tokenizer ID_OR_DIR"),
    # names inside paths and before a colon (a path given as the value) are not the parameter
    (InputError("out: is a folder — out takes a file path, e.g. out/train.parquet", param="out"),
     "out: is a folder — --out takes a file path, e.g. out/train.parquet"),
    # unnamed parameters and names the command has no flag for stay as they are
    (InputError("eval_every must be positive"), "eval_every must be positive"),
    (InputError("n_layers must be positive", param="n_layers"), "n_layers must be positive"),
])
def test_in_cli_terms_shows_named_parameters_as_flags(error, shown):
    assert in_cli_terms(error, _cmd) == shown
    assert in_cli_terms(error, None) == str(error)


def test_param_survives_pickling_and_subclasses_default_to_none():
    e = pickle.loads(pickle.dumps(InputError("steps must be positive", param="steps")))
    assert e.param == "steps" and e.params == ("steps",) and str(e) == "steps must be positive"
    k = KlineDataError("bad", file="x.csv", hint="fix it")
    assert k.param is None and k.params == () and str(k) == "x.csv: bad — fix it"
    k = pickle.loads(pickle.dumps(KlineDataError("bad", file="x.csv", param=("a", "b"))))
    assert k.params == ("a", "b")


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def test_cli_errors_name_flags(tmp_path, capsys):
    code, err = _run(["augment", "--real", "sp500-daily", "--synthetic", str(tmp_path), "--ratio", "-1",
                      "--out", str(tmp_path / "a.parquet")], capsys)
    assert code == 2 and err.startswith("error: --ratio must be a number >= 0") and err.count("\n") == 1
    code, err = _run(["baseline", "fit", "garch", "--freq", "daily", "--steps", "5", "--out",
                      str(tmp_path / "g")], capsys)
    assert code == 2 and err == "error: garch takes no --steps (it has no training loop)\n"


# --- progress ---------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Called(Exception):
    """Raised by a stand-in library call once it has seen its arguments."""


def _capture(seen: dict, key: str):
    def call(*args, **kwargs):
        seen[key] = kwargs["progress"]
        raise _Called

    return call


def _commands(tmp_path, monkeypatch, seen: dict) -> dict[str, list[str]]:
    """Each command with its library call replaced by one that records `progress`."""
    import kronos_synth.baselines.fitting as fitting
    import kronos_synth.baselines.sampling as sampling
    import kronos_synth.data.corpus as corpus
    import kronos_synth.data.sources as sources
    import kronos_synth.data.synthetic as synthetic
    import kronos_synth.metrics.evaluate as evaluate
    import kronos_synth.metrics.roundtrip as roundtrip
    import kronos_synth.model.pretrained as pretrained
    import kronos_synth.train as train

    monkeypatch.setattr(sources, "load_klines", lambda *a, **k: None)
    monkeypatch.setattr(sources, "klines_for", lambda *a, **k: (pd.DataFrame(), "real"))
    monkeypatch.setattr(synthetic, "read_synthetic", lambda *a, **k: None)
    monkeypatch.setattr(pretrained, "load_tokenizer", lambda *a, **k: SimpleNamespace(
        freq="daily", lookback=None, horizon=None, tokenizer=None, representation=None, tokenizer_id="t"))
    monkeypatch.setattr(evaluate, "evaluate_all", _capture(seen, "evaluate"))
    monkeypatch.setattr(roundtrip, "evaluate_roundtrip", _capture(seen, "roundtrip"))
    monkeypatch.setattr(fitting, "fit_baseline", _capture(seen, "baseline fit"))
    monkeypatch.setattr(sampling, "sample_to_dataset", _capture(seen, "baseline sample"))
    monkeypatch.setattr(train, "train_tokenizer", _capture(seen, "train tokenizer"))
    monkeypatch.setattr(corpus, "build_corpus", _capture(seen, "corpus build"))
    out = str(tmp_path / "out")
    return {
        "evaluate": ["evaluate", "discriminative", "--real", "sp500-daily", "--synthetic", str(tmp_path),
                     "--out", out],
        "roundtrip": ["evaluate", "roundtrip", "--real", "sp500-daily", "--out", out],
        "baseline fit": ["baseline", "fit", "garch", "--freq", "daily", "--out", out],
        "baseline sample": ["baseline", "sample", str(tmp_path), "--n", "4", "--out", out],
        "train tokenizer": ["train", "tokenizer", "--data", "sp500-daily", "--out", out],
        "corpus build": ["corpus", "build", str(tmp_path), "--out", out],
    }


@pytest.mark.parametrize("env, flag, expected", [
    ({"CI": "1"}, [], False),
    ({"KRONOS_SYNTH_NO_PROGRESS": "1"}, [], False),
    ({}, [], True),  # a terminal and neither variable: a bar
    ({"CI": "1"}, ["--progress"], True),  # the flag wins
    ({}, ["--no-progress"], False),
])
def test_every_command_decides_progress_with_show_progress(tmp_path, monkeypatch, env, flag, expected):
    for var in ("CI", "KRONOS_SYNTH_NO_PROGRESS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert show_progress(None) is (not env)
    seen: dict[str, bool] = {}
    commands = _commands(tmp_path, monkeypatch, seen)
    for name, argv in commands.items():
        with pytest.raises(_Called):
            main([*argv, *flag])
        assert seen[name] is expected, name
