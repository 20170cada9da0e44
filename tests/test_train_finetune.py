"""Fine-tuning from a reference-format folder through the CLI, and one-line bad-input errors."""

import json

import pytest
from _train_util import tiny_data, tiny_predictor, tiny_tokenizer

from kronos_synth.cli import main
from kronos_synth.train import prepare_training_data


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tokenizer and a predictor pre-trained on S&P 500 (the 'released' checkpoint)."""
    root = tmp_path_factory.mktemp("base")
    tiny_tokenizer(root / "tokenizer", tiny_data(16), steps=8)
    sp500 = prepare_training_data(["sp500-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=16)
    tiny_predictor(root / "model", root / "tokenizer", sp500, steps=24, eval_every=24, lr=3e-3)
    return root


def test_finetune_from_folder_lowers_validation_loss_on_new_data(base, tmp_path, capsys):
    out = tmp_path / "ft"
    code, stdout, err = _cli(["train", "model", "--init", str(base / "model"), "--tokenizer",
                              str(base / "tokenizer"), "--data", "goog-daily", "--lookback", "40", "--horizon", "10",
                              "--steps", "12", "--eval-every", "6", "--lr", "1e-3", "--batch-size", "16",
                              "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    assert "finished at step 12/12" in stdout
    rec = json.loads((out / "training.json").read_text())
    assert rec["init"] == str(base / "model")
    losses = [h["val_loss"] for h in rec["history"]]
    assert losses[-1] < losses[0] - 0.01  # step 0 is the initial checkpoint on the new data
    # the fine-tuned model starts from the pre-trained weights, far better than random ones
    scratch = tiny_predictor(tmp_path / "scratch", base / "tokenizer", tiny_data(), steps=1, eval_every=1)
    assert losses[0] < scratch.result.history[0]["val_loss"] - 0.5
    assert json.loads((out / "kronos_synth.json").read_text())["max_context"] == 50


@pytest.mark.parametrize("extra, needle", [
    (["--data", "no_such_file.csv"], "no_such_file.csv"),
    (["--data", "goog-daily", "--steps", "3", "--epochs", "1"], "exactly one of --steps and --epochs"),
    (["--data", "goog-daily", "--config", "{not json"], "invalid JSON"),
    (["--data", "goog-daily", "--config", '{"d_model": 30, "n_heads": 4}'], "heads"),
    (["--data", "goog-daily", "--init", "Kronos-Tokenizer-base", "--d-model", "64"], "cannot be combined"),
    (["--data", "goog-daily", "--lookback", "5000"], "no train window"),
    (["--data", "goog-daily", "--freq", "15min"], "coarser than --freq"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, needle):
    code, _, err = _cli(["train", "tokenizer", "--out", str(tmp_path / "o"), "--no-progress", *extra], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err
    assert "Traceback" not in err
