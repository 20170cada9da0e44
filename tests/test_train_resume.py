"""Determinism and resume: same seed → same weights; a stopped run rerun ends where an
uninterrupted run ends, bit for bit."""

import json

import pytest
from _train_util import tiny_data, tiny_predictor, tiny_tokenizer, weights_hash

from kronos_synth.data.errors import InputError
from kronos_synth.train.windows import batch_indices


@pytest.fixture(scope="module")
def td():
    return tiny_data(max_val_windows=16)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, td):
    out = tmp_path_factory.mktemp("tok")
    tiny_tokenizer(out, td, steps=4)
    return out


def test_same_seed_same_weights_other_seed_differs(tmp_path, td):
    tiny_tokenizer(tmp_path / "a", td, steps=4)
    tiny_tokenizer(tmp_path / "b", td, steps=4)
    tiny_tokenizer(tmp_path / "c", td, steps=4, seed=1)
    assert weights_hash(tmp_path / "a") == weights_hash(tmp_path / "b")
    assert weights_hash(tmp_path / "a") != weights_hash(tmp_path / "c")


def test_batches_are_a_pure_function_of_seed_and_step():
    a = [batch_indices(7, s, 100, 16).tolist() for s in range(12)]
    assert a == [batch_indices(7, s, 100, 16).tolist() for s in range(12)]
    first_epoch = sorted(sum(a[:6], []))
    assert len(set(first_epoch)) == 96  # 6 full batches of distinct windows per epoch
    assert a[:6] != a[6:12]  # a fresh permutation each epoch


def test_stopped_run_resumes_to_identical_weights(tmp_path, td, tokenizer):
    # dropout on, s2 conditioned on sampled s1: both RNG streams must be restored exactly
    kw = dict(steps=10, eval_every=4, overrides={"ffn_dropout_p": 0.2, "resid_dropout_p": 0.2})
    tiny_predictor(tmp_path / "full", tokenizer, td, **kw)
    part = tiny_predictor(tmp_path / "part", tokenizer, td, stop_after=5, **kw)
    assert not part.result.finished and part.result.steps_done == 5
    again = tiny_predictor(tmp_path / "part", tokenizer, td, **kw)
    assert again.result.finished and again.result.steps_done == 10
    assert weights_hash(tmp_path / "full") == weights_hash(tmp_path / "part")
    assert weights_hash(tmp_path / "full" / "checkpoint-last") == weights_hash(tmp_path / "part" / "checkpoint-last")
    h_full = json.loads((tmp_path / "full" / "training.json").read_text())["history"]
    h_part = json.loads((tmp_path / "part" / "training.json").read_text())["history"]
    assert h_full == h_part  # same losses at every evaluation, incl. the train-loss means
    # a finished run rerun is a no-op
    done = tiny_predictor(tmp_path / "part", tokenizer, td, **kw)
    assert done.result.steps_done == 10 and weights_hash(tmp_path / "part") == weights_hash(tmp_path / "full")


def test_rerun_with_other_settings_is_refused(tmp_path, td, tokenizer):
    tiny_predictor(tmp_path / "m", tokenizer, td, steps=4, stop_after=2)
    with pytest.raises(InputError, match="different data or settings"):
        tiny_predictor(tmp_path / "m", tokenizer, td, steps=6)
