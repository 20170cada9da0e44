"""Reference instance normalisation and time-stamp features."""

import numpy as np
import pandas as pd

from kronos_synth.model import InstanceNorm, Normalizer, time_features


def _bars(rng, n=200):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    vol = rng.lognormal(5, 1, n)
    return np.column_stack([close, close * 1.01, close * 0.99, close, vol, vol * close]).astype(np.float32)


def test_instance_norm_is_the_reference_formula(rng):
    x = _bars(rng)
    norm = InstanceNorm()
    assert isinstance(norm, Normalizer)
    stats = norm.fit(x)
    mean, std = np.mean(x, axis=0), np.std(x, axis=0)  # what KronosPredictor.predict does
    expected = np.clip((x - mean) / (std + 1e-5), -5, 5)
    np.testing.assert_array_equal(norm.transform(x, stats), expected)
    assert stats.mean.shape == (1, 6) and norm.transform(x, stats).dtype == np.float32
    z = norm.transform(x, stats)
    inside = np.abs(z) < 5  # clipped values cannot come back
    assert inside.mean() > 0.9
    np.testing.assert_allclose(norm.inverse(z, stats)[inside], x[inside], rtol=1e-5)


def test_instance_norm_batched_and_clipped(rng):
    xs = np.stack([_bars(rng), _bars(rng) * 3])  # (2, T, 6)
    norm = InstanceNorm()
    z = norm.transform(xs, norm.fit(xs))
    for i in range(2):
        np.testing.assert_allclose(z[i], norm.transform(xs[i], norm.fit(xs[i])), atol=1e-5)
    spike = _bars(rng)
    spike[50, 4] *= 1e4  # volume outlier
    z = norm.transform(spike, norm.fit(spike))
    assert z[50, 4] == 5.0 and z.max() == 5.0
    # statistics from the lookback window apply unchanged to later bars
    later = spike[:10] * 2
    stats = norm.fit(spike)
    np.testing.assert_array_equal(norm.transform(later, stats),
                                  np.clip((later - stats.mean) / (stats.std + np.float32(1e-5)), -5, 5))


def test_time_features_match_reference_columns():
    ts = pd.Series(pd.date_range("2024-02-28 23:30", periods=7, freq="15min"))
    f = time_features(ts)
    assert f.shape == (7, 5) and f.dtype == np.float32
    # 2024-02-28 is a Wednesday (Mon=0 → 2); 2024 is a leap year
    assert f[0].tolist() == [30, 23, 2, 28, 2]
    assert f[2].tolist() == [0, 0, 3, 29, 2]
    idx = pd.DatetimeIndex(ts)
    np.testing.assert_array_equal(time_features(idx), f)
    grid = ts.to_numpy().reshape(1, 7)
    assert time_features(grid).shape == (1, 7, 5)
    np.testing.assert_array_equal(time_features(grid)[0], f)
    try:
        from model.kronos import calc_time_stamps
    except ImportError:
        return
    np.testing.assert_array_equal(calc_time_stamps(ts).values.astype(np.float32), f)
