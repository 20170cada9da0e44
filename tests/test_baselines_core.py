import dataclasses
import json
import warnings

import numpy as np
import pytest
from _baseline_data import kline_series, windows

from kronos_synth.baselines import BaselineError, CollapseWarning, get_baseline
from kronos_synth.baselines.base import (
    Baseline,
    MinMaxScaler,
    ScaleFreeTransform,
    collapse_check,
    log_vwap_over_close,
    validate_windows,
    windows_to_runs,
)
from kronos_synth.data.errors import InputError
from kronos_synth.metrics.validity import bar_validity


def test_scale_free_transform_round_trip_and_first_close_is_zero():
    s = kline_series(200)
    s[[5, 50, 51], 4:] = 0.0  # bars without trades: volume 0, amount 0
    w = windows(s, 20)
    z = ScaleFreeTransform.forward(w)
    assert np.allclose(z[:, 0, 3], 0.0)
    assert np.allclose(z[..., 4], np.log1p(w[..., 4]))
    traded = w[..., 4] > 0
    bars = w[traded]
    assert np.allclose(z[..., 5][traded], np.log(bars[:, 5] / (bars[:, 4] * bars[:, 3])), rtol=0, atol=1e-12)
    assert (~traded).sum() == 6 + 20 + 20 and (z[..., 5][~traded] == 0).all()  # VWAP = close by definition
    back = ScaleFreeTransform.inverse(z, w[:, 0, 3])
    assert np.allclose(back, w, rtol=1e-10, atol=0)
    assert (back[..., 4:][~traded] == 0).all()  # volume 0 gives amount exactly 0


def test_log_vwap_over_close_is_zero_where_undefined():
    v = np.array([2.0, 0.0, 3.0, 0.0])
    a = np.array([2.0 * 10 * 1.01, 0.0, 0.0, 5.0])  # traded, idle, no amount, amount without volume
    r = log_vwap_over_close(v, a, np.full(4, 10.0))
    assert r[0] == pytest.approx(np.log(1.01)) and (r[1:] == 0).all()


def test_reanchoring_at_another_price_level_keeps_every_vwap_inside_its_bar():
    w = windows(kline_series(200), 20)
    assert bar_validity(w).invalid_bars == 0
    z = ScaleFreeTransform.forward(w)
    back = ScaleFreeTransform.inverse(z, 100 * w[:, 0, 3])
    assert np.allclose(back[..., :4], 100 * w[..., :4], rtol=1e-10)
    assert np.allclose(back[..., 4], w[..., 4], rtol=1e-10)
    assert np.allclose(back[..., 5], 100 * w[..., 5], rtol=1e-10)  # amount follows the price level
    assert bar_validity(back).invalid_bars == 0


def test_anchors_are_real_first_closes():
    w = windows(kline_series(200), 20)
    tr = ScaleFreeTransform().fit(w)
    a = tr.draw_anchors(50, np.random.default_rng(0))
    assert np.isin(a, w[:, 0, 3]).all()


def test_minmax_scaler_round_trip_and_constant_feature():
    x = np.random.default_rng(0).normal(size=(10, 5, 6))
    x[..., 5] = 3.0  # constant feature (e.g. no amount)
    sc = MinMaxScaler(-1, 1).fit(x)
    y = sc.transform(x)
    assert y[..., :5].min() == pytest.approx(-1) and y[..., :5].max() == pytest.approx(1)
    assert np.allclose(sc.inverse(y), x)


def test_collapse_check_flags_constant_generator():
    w = windows(kline_series(300), 20)
    assert collapse_check(w, w).ok
    flat = np.repeat(w[:1], len(w), axis=0)
    check = collapse_check(w, flat)
    assert not check.ok and set(check.collapsed) >= {"open", "close", "volume"}
    assert check.ratios["close"] == pytest.approx(0.0, abs=1e-9)


def test_windows_to_runs_recovers_series_and_splits_segments():
    s = kline_series(120)
    w = np.concatenate([windows(s[:60], 10, 1), windows(s[70:], 10, 3)])
    runs = windows_to_runs(w)
    assert len(runs) == 2
    assert np.array_equal(runs[0], s[:60])
    assert np.array_equal(runs[1], s[70:70 + len(runs[1])]) and len(runs[1]) >= 45


def test_validation_rejects_bad_windows():
    w = windows(kline_series(100), 10)
    with pytest.raises(BaselineError, match="shape"):
        validate_windows(w[..., :5])
    bad = w.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(BaselineError, match="non-finite"):
        validate_windows(bad)
    bad = w.copy()
    bad[0, 0, 2] = -1
    with pytest.raises(BaselineError, match="non-positive"):
        validate_windows(bad)
    assert issubclass(BaselineError, InputError)


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(BaselineError, match="unknown baseline"):
        get_baseline("wavenet")
    with pytest.raises(BaselineError, match="unknown option 'layerz'"):
        get_baseline("timegan", layerz=3)
    assert get_baseline("TimeGAN", layers=3).options["layers"] == 3
    with pytest.raises(BaselineError, match="before fit"):
        get_baseline("garch").sample(3)


def test_load_rejects_non_model_folder(tmp_path):
    with pytest.raises(BaselineError, match="config.json"):
        Baseline.load(tmp_path)


OLD_TRANSFORM = ("scale-free: log(OHLC / first close of window), log1p(volume), log1p(amount); "
                 "inverse anchored at a training window's first close (anchors.npy)")


def test_load_rejects_a_folder_saved_with_the_log1p_amount_transform(tmp_path):
    m = get_baseline("bootstrap")
    m.fit(windows(kline_series(200), 20), seed=0)
    m.save(tmp_path / "m")
    assert Baseline.load(tmp_path / "m").sample(3, seed=0).tobytes() == m.sample(3, seed=0).tobytes()
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["transform"] = OLD_TRANSFORM  # what every folder saved before the amount fix records
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(BaselineError, match="older scale-free transform.*refit") as e:
        Baseline.load(tmp_path / "m")
    assert "\n" not in str(e.value)


def test_collapse_warning_is_raised_and_reported():
    class Flat(Baseline):
        name = "flat"

        def _fit(self, z, raw, *, seed, progress):
            self.z0 = z[0]
            return {}, {}

        def _sample_z(self, n, seed):
            return np.repeat(self.z0[None], n, axis=0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = Flat().fit(windows(kline_series(200), 20))
    assert any(issubclass(w.category, CollapseWarning) for w in caught)
    assert not rep.collapse.ok and "close" in rep.collapse.collapsed


# --- fit settings: one frozen dataclass per baseline ----------------------------------------------
# The defaults every baseline had as a `defaults` dict before its options became a dataclass (same order: it is
# the order of config.json and of a sampled dataset's `baseline_options`).
OLD_DEFAULTS = {
    "timegan": {"threads": 1, "hidden": 24, "layers": 2, "batch": 128, "lr": 0.001, "gamma": 1.0, "steps": None,
                "ae_steps": None, "sup_steps": None, "log_every": 50},
    "timevae": {"threads": 1, "latent": 8, "filters": [50, 100, 200], "trend_degree": 2, "seasons": [],
                "recon_weight": 3.0, "batch": 64, "lr": 0.001, "steps": 100, "patience": 20, "epoch_windows": 2000,
                "decoder_noise": True},
    "diffusion-ts": {"threads": 1, "d_model": 32, "heads": 2, "enc_layers": 1, "dec_layers": 2, "trend_degree": 3,
                     "top_k": 3, "dropout": 0.0, "timesteps": 500, "sampling_steps": None, "steps": None,
                     "batch": 64, "lr": 0.001, "ema_decay": 0.995, "ema_every": 10},
    "garch": {"min_obs": 250, "vol_bins": 5, "burn": 1},
    "bootstrap": {"block": 10.0},
}


@pytest.mark.parametrize("name", list(OLD_DEFAULTS))
def test_options_dataclass_holds_the_defaults(name):
    from kronos_synth.baselines import baseline_class

    cls = baseline_class(name).Options
    assert json.dumps(cls().to_dict()) == json.dumps(OLD_DEFAULTS[name])  # values, types and order
    assert json.dumps(get_baseline(name).options) == json.dumps(OLD_DEFAULTS[name])
    assert all(cls.default(k) == v for k, v in OLD_DEFAULTS[name].items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cls(), next(iter(OLD_DEFAULTS[name])), 3)


def test_options_keep_given_values_and_lists_round_trip():
    m = get_baseline("timevae", filters=[8, 16, 16], seasons=[[2, 5]], steps=2.0)
    assert m.config.filters == (8, 16, 16) and m.config.seasons == ((2, 5),)
    assert m.options["filters"] == [8, 16, 16] and m.options["seasons"] == [[2, 5]] and m.options["steps"] == 2.0
    assert get_baseline("bootstrap", block=5).options == {"block": 5}  # as given, not converted


@pytest.mark.parametrize("name, options, param", [
    ("timegan", {"steps": 0}, "steps"),
    ("timegan", {"ae_steps": 1.5}, "ae_steps"),
    ("timegan", {"lr": -1}, "lr"),
    ("timegan", {"threads": 0}, "threads"),
    ("timevae", {"filters": []}, "filters"),
    ("timevae", {"seasons": [[2]]}, "seasons"),
    ("timevae", {"decoder_noise": "yes"}, "decoder_noise"),
    ("timevae", {"epoch_windows": -1}, "epoch_windows"),
    ("diffusion-ts", {"sampling_steps": 0}, "sampling_steps"),
    ("diffusion-ts", {"dropout": 1.0}, "dropout"),
    ("diffusion-ts", {"ema_decay": float("nan")}, "ema_decay"),
    ("garch", {"vol_bins": 0}, "vol_bins"),
    ("bootstrap", {"block": 0.5}, "block"),
])
def test_bad_option_values_raise_naming_the_option(name, options, param):
    with pytest.raises(BaselineError) as e:
        get_baseline(name, **options)
    assert e.value.param == param and str(e.value).startswith(f"{name}: {param} must be")


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(BaselineError) as e:
        get_baseline("garch", steps=3)
    assert str(e.value) == "garch: unknown option 'steps' (known: burn, min_obs, vol_bins)"
