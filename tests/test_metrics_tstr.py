"""TSTR sanity: a predictable process gives a clearly positive IC, i.i.d. returns an IC near 0."""

import numpy as np
import pytest
from _sim import ar1_returns, bars_from_returns

from kronos_synth.metrics.features import normalize_sequences, prepare_features
from kronos_synth.metrics.stats import estimate
from kronos_synth.metrics.tstr import forecast_score, ic_scores


def _sets(phi: float, seed: int):
    rng = np.random.default_rng(seed)
    train = bars_from_returns(ar1_returns(1500, 35, phi, rng), rng)
    test = bars_from_returns(ar1_returns(600, 35, phi, rng), rng)
    return train, test


def test_predictable_process_gives_positive_ic():
    train, test = _sets(0.8, 0)
    res = forecast_score(train, test, lookback=30, horizon=5, repeats=3, epochs=5, seed=0)
    assert res.return_ic.low > 0.3
    assert res.price_ic.low > 0.15
    assert res.return_rank_ic.mean > 0.3
    assert res.runs[0].n_train == 1500 and res.runs[0].n_test == 600


def test_iid_returns_give_ic_interval_containing_zero():
    train, test = _sets(0.0, 1)
    res = forecast_score(train, test, lookback=30, horizon=5, repeats=3, epochs=3, seed=0)
    assert res.return_ic.contains(0.0)
    assert abs(res.price_ic.mean) < 0.05


def test_ic_scores_perfect_and_inverted_forecasts(rng):
    train, _ = _sets(0.5, 2)
    x = normalize_sequences(train, stats_steps=30, clip=1e9)  # unclipped: exact paths
    perfect = ic_scores(x[:, 30:], train, 30)
    assert perfect["price_ic"] == pytest.approx(1.0) and perfect["return_ic"] == pytest.approx(1.0)
    assert perfect["price_rank_ic"] == pytest.approx(1.0)
    # mirror the path around the last close: every correlation flips sign
    inverted = ic_scores(2 * x[:, 29:30] - x[:, 30:], train, 30)
    assert inverted["return_ic"] == pytest.approx(-1.0)
    assert inverted["price_ic"] < -0.9


def test_features_share_price_scale_and_drop_volume_when_free(rng):
    r = rng.normal(0, 0.01, (5, 20))
    bars = bars_from_returns(r, rng)
    x = normalize_sequences(bars, clip=50)
    assert (x[..., 1] >= x[..., 3] - 1e-12).all()  # high ≥ close survives normalization
    assert np.allclose(x[..., :4].mean(axis=(1, 2)), 0) and np.allclose(x[..., 4].std(axis=1), 1)
    free = bars.copy()
    free[..., 4:] = 0
    fs = prepare_features(bars, free)
    assert fs.volume_free and fs.features == ("open", "high", "low", "close") and fs.real.shape[-1] == 4
    assert not prepare_features(bars, bars).volume_free


def test_estimate_t_interval():
    e = estimate([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.half_width == pytest.approx(4.302653 * 1 / np.sqrt(3), rel=1e-5)
    assert np.isnan(estimate([1.0]).half_width)
