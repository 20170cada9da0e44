"""Validity checks and the seam/drift/memorization metrics on constructed data."""

import numpy as np
import pytest

from kronos_synth.metrics.drift import trend_drift
from kronos_synth.metrics.memorization import memorization
from kronos_synth.metrics.validity import CHECKS, bar_validity, real_gaps, seam_gap

GOOD = [10.0, 11.0, 9.0, 10.5, 100.0, 1000.0]  # vwap 10 inside [9, 11]


def test_each_violation_is_counted_exactly():
    bars = np.array([GOOD] * 20)
    bars[0, 1] = 10.2          # high < close (10.5)
    bars[1, 2], bars[1, 5] = 10.2, 1060.0  # low > open (10.0); vwap 10.6 still inside
    bars[2, 1], bars[2, 2], bars[2, 4] = 8.0, 8.5, 0.0  # high < low (also high < max(o, c)); no volume
    bars[3, 0] = -1.0          # price ≤ 0 (also low > min(o, c))
    bars[4, 4] = -5.0          # volume < 0
    bars[5, 4], bars[5, 5] = 0.0, -5.0  # amount < 0 (no volume, so no VWAP either)
    bars[6, 5] = 2000.0        # vwap 20 > high
    bars[7, 5] = 850.0         # vwap 8.5 < low
    res = bar_validity(bars.reshape(2, 10, 6))
    assert res.n_bars == 20
    assert res.counts == {
        CHECKS[0]: 2, CHECKS[1]: 2, CHECKS[2]: 1, CHECKS[3]: 1, CHECKS[4]: 1, CHECKS[5]: 1, CHECKS[6]: 2,
    }
    assert res.invalid_bars == 8 and res.invalid_share == pytest.approx(0.4)
    assert bar_validity(np.array([GOOD] * 5)).invalid_bars == 0
    # zero volume (volume-free data) never fails the VWAP check
    free = np.array([GOOD[:4] + [0.0, 0.0]] * 3)
    assert bar_validity(free).invalid_bars == 0


def test_seam_matches_real_gaps_and_flags_jumps(rng):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (200, 50)), axis=1))
    open_ = np.roll(close, 1, axis=1) * (1 + rng.normal(0, 0.001, close.shape))  # open = last close ± noise
    gaps = real_gaps(open_, close)
    assert gaps.shape == (200 * 49,)
    last = close[:, -1]
    same = seam_gap(last, last * (1 + rng.normal(0, 0.001, 200)), gaps)
    jump = seam_gap(last, last * 1.02, gaps)
    assert same.ks_statistic < 0.15 and jump.ks_statistic > 0.99
    assert jump.synthetic_mean_abs_gap == pytest.approx(0.02)


def test_drift_slope_sign_for_mean_reverting_generator(rng):
    n, L, H = 500, 30, 10
    ctx = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, L)), axis=1))
    trend = ctx[:, -1] / ctx.mean(axis=1) - 1
    real = ctx[:, -1:] * np.exp(np.cumsum(rng.normal(0, 0.01, (n, H)), axis=1))
    gen = ctx[:, -1:] * (1 - trend[:, None] * np.linspace(0.1, 1, H))  # gives back the trend
    res = trend_drift(ctx, gen, real)
    assert len(res.buckets) == 5 and sum(b.n for b in res.buckets) == n
    assert res.slope < -0.5
    assert res.buckets[0].gap > 0 > res.buckets[-1].gap


def test_memorization_flags_copies(rng):
    train = rng.normal(size=(500, 8, 4))
    test = rng.normal(size=(200, 8, 4))
    copies = train[:100] + rng.normal(0, 1e-3, (100, 8, 4))
    fresh = rng.normal(size=(100, 8, 4))
    assert memorization(copies, train, test).share_below_real_p1 == 1.0
    assert memorization(fresh, train, test).share_below_real_p1 < 0.1
