import numpy as np
import pytest

from kronos_synth.data.errors import InputError
from kronos_synth.model.normalize import InstanceNorm
from kronos_synth.model.representation import Geometry, Levels, geometry_features, get_representation


def _bars(rng, n=4, t=50):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, t)), axis=1))
    open_ = close * np.exp(rng.normal(0, 0.002, (n, t)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, (n, t))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, (n, t))))
    vol = rng.lognormal(10, 1, (n, t))
    return np.stack([open_, high, low, close, vol, vol * close], -1)


def test_levels_is_the_reference_instance_norm(rng):
    x = _bars(rng)
    rep, ref = Levels(), InstanceNorm()
    np.testing.assert_array_equal(rep.transform(x, rep.fit(x[:, :30])), ref.transform(x, ref.fit(x[:, :30])))


def test_geometry_round_trip_rebuilds_the_bars(rng):
    x = _bars(rng)
    rep = Geometry(clip=50.0)
    stats = rep.fit(x[:, :30])
    z = rep.transform(x, stats)
    # the window itself, anchored at its first open
    np.testing.assert_allclose(rep.inverse(z, stats, continue_context=False), x, rtol=1e-5)
    # a continuation, anchored at the context's last close
    zf = rep.transform(x[:, 29:], stats)[:, 1:]  # features of bars 30.. computed with their previous close
    np.testing.assert_allclose(rep.inverse(zf, stats), x[:, 30:], rtol=1e-5)


def test_geometry_decodes_only_valid_bars(rng):
    rep = Geometry()
    x = _bars(rng)
    stats = rep.fit(x)
    noisy = rep.transform(x, stats) + rng.normal(0, 1.0, (4, 50, 6))  # reconstruction noise
    bars = rep.inverse(noisy, stats)
    assert (bars[..., 1] >= np.maximum(bars[..., 0], bars[..., 3])).all()
    assert (bars[..., 2] <= np.minimum(bars[..., 0], bars[..., 3])).all()
    assert (bars[..., :4] > 0).all() and (bars[..., 4:] >= 0).all()
    # the first generated open continues the context's last close up to the modelled gap
    gap = np.log(bars[:, 0, 0] / x[:, -1, 3])
    assert np.abs(gap).max() < 0.05


def test_geometry_features_of_known_bar():
    bars = np.array([[[10, 11, 9, 10, 5, 50], [11, 13, 10.5, 12, 0, 0]]], dtype=float)
    f = geometry_features(bars)[0, 1]
    np.testing.assert_allclose(f, [np.log(1.1), np.log(12 / 11), np.log(13 / 12), np.log(11 / 10.5), 0, 0])


def test_get_representation():
    assert get_representation(None).name == "levels"
    assert get_representation({"representation": "geometry", "clip": 8}).clip == 8.0
    with pytest.raises(InputError, match="unknown representation"):
        get_representation("returns")
