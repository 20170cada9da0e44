import numpy as np
import pytest

from kronos_synth.data.errors import InputError
from kronos_synth.metrics.validity import bar_validity
from kronos_synth.model.normalize import InstanceNorm
from kronos_synth.model.representation import (
    Geometry,
    Levels,
    bars_from_geometry,
    geometry_features,
    get_representation,
    vwap_position,
)


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
    np.testing.assert_array_equal(rep.encode(x, 30), ref.transform(x, ref.fit(x[:, :30])))  # what training feeds


def test_geometry_features_invert_exactly(rng):
    x = _bars(rng)
    rebuilt = bars_from_geometry(geometry_features(x)[:, 1:], x[:, 0, 3])
    np.testing.assert_allclose(rebuilt, x[:, 1:], rtol=1e-9)


def test_geometry_round_trip_rebuilds_the_bars(rng):
    x = _bars(rng)
    rep = Geometry(clip=50.0, soft=0.0)
    stats = rep.fit(x[:, :30])
    z = rep.transform(x, stats)
    # the window itself, anchored at its first open
    np.testing.assert_allclose(rep.inverse(z, stats, continue_context=False), x, rtol=1e-5)
    # a continuation, anchored at the context's last close
    zf = rep.transform(x[:, 29:], stats)[:, 1:]  # features of bars 30.. computed with their previous close
    np.testing.assert_allclose(rep.inverse(zf, stats), x[:, 30:], rtol=1e-5)


def test_soft_compression_inverts_and_keeps_tails_ordered(rng):
    x = _bars(rng)
    x[:, 40, [1, 3]] *= 1.2  # a 20 % jump (high and close): far beyond 5 sigma of 1 % returns
    rep = Geometry(clip=12.0, soft=2.0)
    stats = rep.fit(x[:, :30])
    z = rep.transform(x, stats)
    assert np.abs(z).max() < 12.0  # asinh keeps it inside the clip
    zf = rep.transform(x[:, 29:], stats)[:, 1:]
    np.testing.assert_allclose(rep.inverse(zf, stats), x[:, 30:], rtol=1e-4)
    plain = Geometry(clip=5.0, soft=0.0)
    assert np.abs(plain.transform(x, plain.fit(x[:, :30]))).max() == 5.0  # the plain clip flattens it


@pytest.mark.parametrize("rep", [Geometry(), Geometry(clip=5.0, soft=0.0, gap_floor=0.0), Geometry(clip=8.0, soft=3.0)])
def test_geometry_decodes_only_valid_bars(rng, rep):
    x = _bars(rng)
    stats = rep.fit(x)
    noisy = rep.transform(x, stats) + rng.normal(0, 1.0, (4, 50, 6))  # reconstruction noise
    for z in (noisy, rng.normal(0, 3.0, (4, 50, 6)), rng.uniform(-30, 30, (4, 50, 6)),
              rng.uniform(-1e6, 1e6, (4, 50, 6))):  # absurd decoder output stays finite and valid
        bars = rep.inverse(z.astype(np.float32), stats)
        assert np.isfinite(bars).all()
        assert bar_validity(bars).invalid_bars == 0  # every rule, including amount / volume inside [low, high]
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
    np.testing.assert_allclose(f, [np.log(1.1), np.log(12 / 11), np.log(13 / 12), np.log(11 / 10.5), 0, 0.5])
    assert geometry_features(bars)[0, 0, 5] == 0.5  # VWAP 10 in [9, 11]


@pytest.mark.parametrize("bar, position", [
    ([10, 11, 9, 10, 5, 50], 0.5),        # VWAP 10 in the middle of [9, 11]
    ([10, 11, 9, 10, 2, 19], 0.25),       # VWAP 9.5
    ([10, 11, 9, 10, 0, 0], 0.5),         # no volume: undefined → the middle
    ([10, 11, 9, 10, 0, 40], 0.5),        # amount without volume
    ([10, 10, 10, 10, 3, 30], 0.5),       # high == low
    ([10, 11, 9, 10, 1, 20], 1.0),        # VWAP 20 above the high (bad data): clamped
    ([10, 11, 9, 10, 1, 1], 0.0),         # VWAP 1 below the low: clamped
    ([10, 9.5, 9, 10.5, 1, 10.5], 1.0),   # high below the close: the range covers open and close
])
def test_vwap_position_edge_cases(bar, position):
    assert vwap_position(np.array(bar, dtype=float)) == pytest.approx(position)


def test_volume_free_data_round_trip_to_zero_volume_and_amount(rng):
    x = _bars(rng)
    x[..., 4:] = 0.0  # FX: no volume, no amount
    rep = Geometry()
    stats = rep.fit(x[:, :30])
    z = rep.transform(x, stats)
    assert np.isfinite(z).all() and (z[..., 4:] == 0).all()
    bars = rep.inverse(z[:, 30:], stats)
    assert (bars[..., 4:] == 0).all() and bar_validity(bars).invalid_bars == 0


def test_amount_decodes_inside_the_bar():
    f = np.array([[[0.0, 0.01, 0.002, 0.003, np.log1p(100.0), 0.25]]])
    bar = bars_from_geometry(f, np.array([50.0]))[0, 0]
    o, h, lo, c, v, a = bar
    assert v == pytest.approx(100.0) and a / v == pytest.approx(lo + 0.25 * (h - lo))


def test_get_representation():
    assert get_representation(None).name == "levels"
    assert get_representation({"representation": "geometry", "clip": 8}).clip == 8.0
    assert get_representation("geometry") == Geometry()
    # a sidecar: its other keys are ignored; to_dict() rebuilds the same representation
    rep = Geometry(clip=9.0, soft=1.5)
    assert get_representation({"kind": "predictor", "max_context": 50, **rep.to_dict()}) == rep
    assert get_representation(Levels().to_dict()) == Levels() and get_representation(rep) is rep
    assert Geometry().d_in == Levels().d_in == 6
    with pytest.raises(InputError, match="unknown representation"):
        get_representation("returns")
    with pytest.raises(InputError, match="clip"):
        get_representation({"representation": "geometry", "clip": "wide"})


def test_center_returns_scales_returns_around_zero(rng):
    x = _bars(rng)
    x[..., [0, 1, 2, 3, 5]] *= np.exp(0.01 * np.arange(x.shape[1]))[None, :, None]  # a strong up-trend
    plain, centered = Geometry(clip=50.0, soft=0.0), Geometry(clip=50.0, soft=0.0, center_returns=True)
    s_plain, s_cent = plain.fit(x[:, :30]), centered.fit(x[:, :30])
    assert np.all(s_cent.mean[..., :2] == 0.0) and np.all(s_plain.mean[..., 0] + s_plain.mean[..., 1] > 0.005)
    np.testing.assert_array_equal(s_cent.mean[..., 2:], s_plain.mean[..., 2:])
    np.testing.assert_array_equal(s_cent.std, s_plain.std)
    # a zero model output continues flat instead of carrying the trend on
    flat = centered.inverse(np.zeros((4, 5, 6), np.float32), s_cent)
    trend = plain.inverse(np.zeros((4, 5, 6), np.float32), s_plain)
    assert np.allclose(flat[:, -1, 3], x[:, 29, 3]) and np.all(trend[:, -1, 3] > x[:, 29, 3] * 1.04)
    # still a lossless round trip, and the flag survives the sidecar
    zf = centered.transform(x[:, 29:], s_cent)[:, 1:]
    np.testing.assert_allclose(centered.inverse(zf, s_cent), x[:, 30:], rtol=1e-5)
    assert get_representation(centered.to_dict()) == centered
    assert "center_returns" not in plain.to_dict()
