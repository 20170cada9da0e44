"""evaluation.bench_activity: the within-window activity trends."""

import numpy as np
import pytest

from evaluation.bench_activity import daily_cycle, window_trends


def _bars(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    n, t = close.shape
    out = np.empty((n, t, 6))
    out[..., 0] = out[..., 3] = close
    out[..., 1], out[..., 2] = close * 1.001, close * 0.999
    out[..., 4], out[..., 5] = volume, volume * close
    return out


def test_steady_windows_have_no_trend_and_a_decay_is_negative():
    t = 73  # 72 returns: thirds of 24
    steps = np.where(np.arange(t - 1) % 2 == 0, 0.01, -0.01)  # |return| 1 % on every bar
    close = np.exp(np.concatenate([[0.0], np.cumsum(steps)]))[None].repeat(2, axis=0)
    volume = np.stack([np.full(t, 100.0), np.r_[np.full(25, 200.0), np.full(24, 100.0), np.full(24, 50.0)]])
    tr = window_trends(_bars(close, volume))
    assert tr["volatility"] == pytest.approx([0.0, 0.0])
    assert tr["volume"] == pytest.approx([0.0, np.log(50 / 200)])


def test_calmer_last_third_gives_the_log_ratio_of_mean_moves():
    t = 73
    steps = np.r_[np.full(24, 0.02), np.full(24, 0.01), np.full(24, 0.005)]
    close = np.exp(np.concatenate([[0.0], np.cumsum(steps)]))[None]
    tr = window_trends(_bars(close, np.full((1, t), 10.0)))
    assert tr["volatility"][0] == pytest.approx(np.log(0.005 / 0.02))


def test_daily_cycle_is_one_for_a_repeating_day_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    day = rng.lognormal(5, 0.5, 24)
    close = np.full((2, 72), 100.0)
    volume = np.stack([np.tile(day, 3), rng.lognormal(5, 0.5, 72)])
    bars = _bars(close, volume)
    assert daily_cycle(bars[:1], 24) == pytest.approx(1.0)
    assert abs(daily_cycle(bars[1:], 24)) < 0.4
