"""Volatility regime of a context (data/regime.py) and the predictor's regime input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_synth.data.regime import MIN_SPAN, REGIME_BUCKETS, SPAN, regime_ids, segment_first, with_regime
from kronos_synth.data.splits import block_first, extract_windows
from kronos_synth.model import Kronos
from tests._tiny import PRED

L = 20


def _closes(vols: list[tuple[int, float]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.concatenate([rng.normal(0, v, n) for n, v in vols])
    return 100 * np.exp(np.cumsum(r))


def _expected_bucket(close: np.ndarray, start: int, first: int) -> int:
    end = start + L
    lr = np.diff(np.log(close[max(first, end - SPAN * L):end]))
    x = np.log(np.diff(np.log(close[start:end])).std() / lr.std())
    return 1 + int(np.clip(np.floor((x + 1.5) / 0.2), 0, REGIME_BUCKETS - 1))


def test_regime_reads_the_context_against_the_history_before_it():
    # 8 lookbacks at 1 %, then a lookback at 4 %: a stressed context; then calm again at 0.25 %
    close = _closes([(8 * L, 0.01), (L, 0.04), (8 * L, 0.0025)])
    stressed, calm_after, no_history = 8 * L, 9 * L + 7 * L, L
    ids = regime_ids(close, [stressed, calm_after, no_history, MIN_SPAN * L - L], np.zeros(4, int), L)
    # 4× the 1 % before it (the long run includes the context)
    assert ids[0] == _expected_bucket(close, stressed, 0) and ids[0] >= 11
    assert ids[1] == _expected_bucket(close, calm_after, 0) and ids[1] <= 6
    assert ids[2] == 0  # fewer than MIN_SPAN lookbacks up to the context's end: unknown
    assert ids[3] == _expected_bucket(close, MIN_SPAN * L - L, 0)  # exactly MIN_SPAN lookbacks: known


def test_history_never_crosses_the_segment_start():
    close = _closes([(8 * L, 0.05), (8 * L, 0.01)])
    start = 8 * L + 6 * L
    whole = regime_ids(close, [start], [0], L)[0]
    own = regime_ids(close, [start], [8 * L], L)[0]  # the segment starts where the 1 % stretch does
    assert own == _expected_bucket(close, start, 8 * L)
    assert whole < own  # the 5 % stretch before the segment would make the context look calm


def test_segment_first_and_block_first():
    assert segment_first(np.array([0, 1, 2, 10, 11, 30])).tolist() == [0, 0, 0, 10, 10, 30]
    df = pd.DataFrame({"symbol": ["A"] * 5 + ["B"] * 4, "segment": [0, 0, 1, 1, 1, 0, 0, 0, 0]})
    assert block_first(df, np.array([0, 1, 2, 4, 5, 8])).tolist() == [0, 0, 2, 2, 5, 5]


def test_windows_carry_the_regime_of_their_context():
    close = _closes([(12 * L, 0.01)], seed=1)
    df = pd.DataFrame({"timestamps": pd.date_range("2020-01-01", periods=len(close), freq="D"), "symbol": "X",
                       "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                       "volume": 1.0, "amount": close})
    w = extract_windows(df, L + 5, regime_lookback=L)
    assert w.regime.tolist() == regime_ids(close, w.starts, np.zeros(len(w), int), L).tolist()
    assert (w.regime[: MIN_SPAN * L - L] == 0).all() and (w.regime[MIN_SPAN * L:] > 0).all()
    assert w.take(np.array([3, 100])).regime.tolist() == [w.regime[3], w.regime[100]]
    assert extract_windows(df, L + 5).regime is None


def test_with_regime_appends_a_constant_column():
    s = np.zeros((2, 4, 5), np.float32)
    out = with_regime(s, np.array([3, 7]))
    assert out.shape == (2, 4, 6) and out.dtype == np.float32
    assert (out[0, :, 5] == 3).all() and (out[1, :, 5] == 7).all()


def test_regime_input_starts_as_the_model_without_it_and_round_trips(tmp_path):
    torch.manual_seed(0)
    base = Kronos(**PRED).eval()
    model = Kronos(**PRED, regime_buckets=REGIME_BUCKETS).eval()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["regime_emb.weight"] and not unexpected
    s1, s2 = torch.randint(0, 16, (3, 12)), torch.randint(0, 16, (3, 12))
    stamp = torch.from_numpy(with_regime(np.random.default_rng(0).integers(0, 5, (3, 12, 5)).astype(np.float32),
                                         np.array([0, 4, 15])))
    with torch.no_grad():
        assert torch.equal(base.decode_s1(s1, s2, stamp[..., :5])[0], model.decode_s1(s1, s2, stamp)[0])
        model.regime_emb.weight.normal_()
        out = model.decode_s1(s1, s2, stamp)[0]
        unknown = model.decode_s1(s1, s2, stamp[..., :5])[0]  # no column: bucket 0
        assert torch.equal(out[0], unknown[0]) and not torch.allclose(out[1], unknown[1])
    model.save_pretrained(tmp_path / "m")
    again = Kronos.from_pretrained(tmp_path / "m")
    assert again.config["regime_buckets"] == REGIME_BUCKETS
    assert torch.equal(again.regime_emb.weight, model.regime_emb.weight)
    base.save_pretrained(tmp_path / "b")  # a model without it writes the released checkpoints' keys only
    assert "regime_buckets" not in (tmp_path / "b" / "config.json").read_text()


def test_training_windows_carry_the_regime():
    from tests._train_util import tiny_data

    td = tiny_data()
    x, stamps = td.train.batch(np.arange(0, len(td.train), 50))
    assert stamps.shape[-1] == 6
    ids = stamps[:, 0, 5].astype(int)
    assert (stamps[..., 5] == ids[:, None]).all()
    starts = td.train.starts[np.arange(0, len(td.train), 50)]
    assert ids.tolist() == regime_ids(td.train.rows[:, 3], starts, td.train.first[np.arange(0, len(td.train), 50)],
                                      td.lookback).tolist()
    assert (ids > 0).mean() > 0.8  # daily GOOG: most windows have 3 lookbacks of history


@pytest.mark.parametrize("n_buckets", [0, REGIME_BUCKETS])
def test_generation_passes_the_context_regime(tmp_path, n_buckets):
    """A regime model's draws depend on the context's regime; the same seed gives the same bytes."""
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.generate.api import generate_dataset
    from kronos_synth.generate.config import GenerationConfig
    from tests._tiny import save_tiny_model

    folder = save_tiny_model(tmp_path / "tiny")
    torch.manual_seed(1)
    model = Kronos.from_pretrained(folder)
    if n_buckets:
        m = Kronos(**model.config, regime_buckets=n_buckets)
        m.load_state_dict(model.state_dict(), strict=False)
        m.regime_emb.weight.data.normal_(0, 3.0)
        m.save_pretrained(folder)

    def run(name):
        cfg = GenerationConfig(freq="daily", lookback=30, horizon=8, seed=2, dtype="fp32")
        generate_dataset(cfg, n=16, dataset="goog-daily", model=folder, out=str(tmp_path / name), progress=False)
        return read_synthetic(tmp_path / name).frame

    a = run("a")
    pd.testing.assert_frame_equal(a, run("b"))
    if n_buckets:  # zeroing the table gives other paths: the regime reached the model
        m = Kronos.from_pretrained(folder)
        m.regime_emb.weight.data.zero_()
        m.save_pretrained(folder)
        assert not np.allclose(a["close"].to_numpy(), run("c")["close"].to_numpy())


def test_panel_windows_carry_each_assets_regime():
    from kronos_synth.data.panels import panel_windows

    n = 12 * L
    ts = pd.date_range("2020-01-01", periods=n, freq="D")
    frames = []
    for sym, vols in (("A", [(n, 0.01)]), ("B", [(8 * L, 0.002), (4 * L, 0.03)])):
        c = _closes(vols, seed=len(frames))
        frames.append(pd.DataFrame({"timestamps": ts, "symbol": sym, "open": c, "high": c * 1.01, "low": c * 0.99,
                                    "close": c, "volume": 1.0, "amount": c}))
    w = panel_windows(pd.concat(frames, ignore_index=True), ("A", "B"), "daily", L, split="all")
    assert w.regime.shape == (len(w), 2)
    starts = np.arange(len(w))  # one linked stretch: window k starts at bar k
    for a, f in enumerate(frames):
        expect = regime_ids(f["close"].to_numpy(), starts, np.zeros(len(w), int), L)
        assert w.regime[:, a].tolist() == expect.tolist()
    assert w.regime[8 * L + 2, 1] > w.regime[8 * L + 2, 0]  # B just turned volatile, A did not
    assert w.take(np.array([5])).regime.tolist() == [w.regime[5].tolist()]


def test_regime_table_gets_its_own_learning_rate():
    from kronos_synth.train.config import PredictorTrainingConfig
    from kronos_synth.train.loop import param_groups

    m = Kronos(**PRED, regime_buckets=REGIME_BUCKETS)
    groups = param_groups(m, PredictorTrainingConfig(lr=1e-4, regime_lr_scale=20).loop)
    assert [g["lr"] for g in groups] == [1e-4, pytest.approx(2e-3)]
    assert [p for p in groups[1]["params"]] == [m.regime_emb.weight]
