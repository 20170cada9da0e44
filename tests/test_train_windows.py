"""Training windows: time split, lookback-only normalisation (no future leak), pluggable representation."""

import numpy as np
import pytest

from kronos_synth.data.errors import InputError
from kronos_synth.train import Geometry, Levels, get_representation, prepare_training_data


def test_normalisation_uses_the_lookback_only_and_clips():
    rng = np.random.default_rng(0)
    w = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (3, 30, 6)), axis=1))
    z = Levels().encode(w, lookback=20)
    lb = w[:, :20]
    expect = (w - lb.mean(1, keepdims=True)) / (lb.std(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(z, np.clip(expect, -5, 5), rtol=1e-4, atol=1e-4)
    assert z.dtype == np.float32
    future = w.copy()
    future[:, 20:] *= 50.0  # a crash or spike after the lookback must not change its normalisation
    z2 = Levels().encode(future, lookback=20)
    np.testing.assert_array_equal(z2[:, :20], z[:, :20])
    assert z2[:, 20:].max() == 5.0  # clipped


def test_windows_stay_in_their_period_and_have_the_right_length():
    td = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=30)
    assert td.window == 51 and td.train.length == 51
    sym = td.sources[0].symbols[0]
    x, stamps = td.train.batch(np.arange(len(td.train)))
    assert x.shape == (len(td.train), 51, 6) and stamps.shape == (len(td.train), 51, 6)  # + the regime id
    assert np.abs(x).max() <= 5.0
    assert len(td.val) == 30  # evenly thinned to max_val_windows
    # every window row of the validation set lies in the test period, every train row before it
    val_rows = td.val.starts[:, None] + np.arange(51)
    assert val_rows.max() < len(td.val.rows) and td.train.starts.max() + 51 <= len(td.train.rows)
    assert sym["train_last"] < sym["test_first"]
    # stamps are minute, hour, weekday, day, month of daily bars
    assert set(np.unique(stamps[..., 2])) <= set(range(5)) and stamps[..., 3].min() >= 1


def test_representation_registry():
    assert get_representation("levels").d_in == 6 and get_representation("geometry").d_in == 6
    with pytest.raises(InputError, match="unknown representation"):
        get_representation("returns")


def test_geometry_windows_are_the_model_layer_transform_of_the_raw_bars():
    rep = Geometry(clip=7.0, soft=1.0)
    td = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=30,
                               representation=rep.to_dict())
    assert td.representation == "geometry" and td.describe()["representation_config"] == rep.to_dict()
    index = np.arange(0, len(td.train), 97)
    x, _ = td.train.batch(index)
    raw = td.train.rows[td.train.starts[index][:, None] + np.arange(51)]
    np.testing.assert_array_equal(x, rep.transform(raw, rep.fit(raw[:, :40])))
    assert x.dtype == np.float32 and np.abs(x).max() <= 7.0
    future = raw.copy()
    future[:, 40:, :4] *= 3.0  # what happens after the lookback never changes the lookback's features
    np.testing.assert_array_equal(rep.encode(future, 40)[:, :40], x[:, :40])


def test_train_tail_validation_never_reads_the_test_period():
    held = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=10_000)
    tail = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=10_000,
                                 validation="train-tail")
    h, t = held.sources[0].symbols[0], tail.sources[0].symbols[0]
    # the held-out split's train part, split once more: its head trains, its tail validates
    n_train, n_val = len(tail.train.rows), len(tail.val.rows)
    assert n_train + 50 + n_val == h["train_rows"] == len(held.train.rows)  # a gap of one window between
    np.testing.assert_array_equal(tail.train.rows, held.train.rows[:n_train])
    np.testing.assert_array_equal(tail.val.rows, held.train.rows[-n_val:])
    assert t["train_last"] < t["val_first"] and t["val_last"] == h["train_last"] < h["test_first"]
    assert "test_first" not in t and tail.describe()["validation"] == "train-tail"
    assert "validation" not in held.describe()  # the default keeps the fingerprints of earlier runs
    with pytest.raises(InputError, match="validation must be one of held-out, train-tail"):
        prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, validation="test")


def test_prepared_data_must_match_the_configs_validation(tmp_path):
    from kronos_synth.train import TokenizerTrainingConfig, train_tokenizer

    held = prepare_training_data(["goog-daily"], freq="daily", lookback=40, horizon=10, max_val_windows=8)
    config = TokenizerTrainingConfig(freq="daily", steps=1, validation="train-tail")
    with pytest.raises(InputError, match="prepared with validation='held-out'") as e:
        train_tokenizer(held, tmp_path / "tok", config, progress=False)
    assert e.value.param == "validation" and not (tmp_path / "tok").exists()  # refused before any folder
