import warnings

import numpy as np
import pytest
from _baseline_data import kline_series, windows

from kronos_synth.baselines import Baseline, get_baseline
from kronos_synth.baselines.base import CollapseWarning, log_vwap_over_close, windows_to_runs
from kronos_synth.metrics.validity import CHECKS, bar_validity

VWAP_RULE = CHECKS[6]  # amount/volume outside [low, high]

# Tiny settings: every model fits in about a second.
TINY = {
    "bootstrap": {},
    "garch": {},
    "timevae": {"steps": 2, "filters": [8, 16, 16], "batch": 32},
    "diffusion-ts": {"steps": 3, "d_model": 16, "heads": 2, "timesteps": 50, "sampling_steps": 5, "batch": 16},
    "timegan": {"steps": 2, "hidden": 8, "batch": 16},
}


@pytest.fixture(scope="module")
def train_windows():
    return windows(kline_series(600, seed=1), 20, 1)


@pytest.fixture(scope="module")
def fitted(train_windows):
    models = {}
    for name, opts in TINY.items():
        m = get_baseline(name, **opts)
        m.collapse_samples = 50
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollapseWarning)  # tiny models collapse, by design
            m.fit(train_windows, seed=3)
        models[name] = m
    return models


@pytest.mark.parametrize("name", list(TINY))
def test_samples_are_finite_positive_and_shaped(fitted, name):
    x = fitted[name].sample(40, seed=0)
    assert x.shape == (40, 20, 6)
    assert np.isfinite(x).all()
    assert (x[..., :4] > 0).all()
    rep = fitted[name].report
    assert rep.window == 20 and rep.n_windows == 581 and rep.seed == 3
    assert set(rep.collapse.ratios) == {"open", "high", "low", "close", "volume", "amount"}
    assert all(np.isfinite(v) for v in rep.collapse.ratios.values())


@pytest.mark.parametrize("name", list(TINY))
def test_same_seed_same_samples_other_seed_differs(fitted, name):
    m = fitted[name]
    a, b, c = m.sample(30, seed=5), m.sample(30, seed=5), m.sample(30, seed=6)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", list(TINY))
def test_same_fit_seed_same_model(train_windows, name):
    m1, m2 = (get_baseline(name, **TINY[name]) for _ in range(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        for m in (m1, m2):
            m.collapse_samples = 20
            m.fit(train_windows[:200], seed=11)
    assert m1.sample(10, seed=0).tobytes() == m2.sample(10, seed=0).tobytes()


@pytest.mark.parametrize("name", list(TINY))
def test_save_load_round_trip(fitted, name, tmp_path):
    m = fitted[name]
    m.save(tmp_path / name)
    loaded = Baseline.load(tmp_path / name)
    assert type(loaded) is type(m) and loaded.options == m.options
    assert loaded.sample(25, seed=9).tobytes() == m.sample(25, seed=9).tobytes()
    assert loaded.report.final_losses == pytest.approx(m.report.final_losses)
    import json

    cfg = json.loads((tmp_path / name / "config.json").read_text())
    for key in ("name", "options", "seed", "wall_time_s", "n_parameters", "final_losses", "collapse"):
        assert key in cfg
    if name in ("timevae", "diffusion-ts", "timegan"):
        assert (tmp_path / name / "model.safetensors").is_file() and "scaler" in cfg
        assert cfg["n_parameters"] > 100


def test_anchors_set_the_first_close(fitted):
    x = fitted["timevae"].sample(4, seed=0, anchors=np.array([1.0, 2.0, 3.0, 4.0]))
    assert np.allclose(x[:, 0, 3], [1, 2, 3, 4])


@pytest.mark.parametrize("name", list(TINY))
def test_amount_follows_the_anchor_price_level(fitted, name):
    """Prices and amount scale with the anchor, volume does not: the VWAP stays where it was in the bar."""
    m = fitted[name]
    anchors = m.transform.draw_anchors(30, np.random.default_rng(0))
    a, b = m.sample(30, seed=2, anchors=anchors), m.sample(30, seed=2, anchors=100 * anchors)
    assert np.allclose(b[..., :4], 100 * a[..., :4], rtol=1e-12)
    assert np.array_equal(b[..., 4], a[..., 4])
    assert np.allclose(b[..., 5], 100 * a[..., 5], rtol=1e-12)
    assert bar_validity(b).counts[VWAP_RULE] == bar_validity(a).counts[VWAP_RULE]


def test_bootstrap_matches_return_statistics_and_copies_real_bar_geometry():
    s = kline_series(3000, seed=2)
    w = windows(s, 30, 1)
    m = get_baseline("bootstrap", block=8)
    m.fit(w, seed=0)
    x = m.sample(2000, seed=1)
    real_r = np.diff(np.log(s[:, 3]))
    gen_r = np.diff(np.log(x[..., 3]), axis=1).ravel()
    assert gen_r.std() == pytest.approx(real_r.std(), rel=0.10)
    assert np.abs(gen_r).mean() == pytest.approx(np.abs(real_r).mean(), rel=0.10)
    # each generated bar's shape relative to its close is a real bar's shape
    real_shape = np.round(np.log(s[:, :3] / s[:, 3:4]), 9)
    gen_shape = np.round(np.log(x[..., :3] / x[..., 3:4]).reshape(-1, 3), 9)
    real_set = {tuple(r) for r in real_shape}
    assert all(tuple(g) in real_set for g in gen_shape[:5000])
    assert np.isin(np.round(x[..., 4], 3), np.round(s[:, 4], 3)).all()
    # geometry is valid because it is real
    assert (x[..., 1] >= x[..., [0, 3]].max(-1) - 1e-9).all()
    assert (x[..., 2] <= x[..., [0, 3]].min(-1) + 1e-9).all()


def test_bootstrap_reanchored_100x_keeps_every_bars_vwap_position():
    s = kline_series(3000, seed=7)
    rng = np.random.default_rng(0)
    bad = rng.choice(len(s), 150, replace=False)  # bars whose real VWAP lies above the high (bad data)
    s[bad, 5] = s[bad, 4] * s[bad, 1] * 1.02
    idle = rng.choice(np.setdiff1d(np.arange(len(s)), bad), 60, replace=False)  # no trades
    s[idle, 4:] = 0.0
    m = get_baseline("bootstrap", block=8)
    m.fit(windows(s, 30, 1), seed=0)
    anchors = 100 * m.transform.draw_anchors(2000, np.random.default_rng(1))
    x = m.sample(2000, seed=1, anchors=anchors)
    assert x[..., 3].min() > 20 * s[:, 3].max()  # far above the training price level

    real, gen = bar_validity(s), bar_validity(x)
    assert real.counts[VWAP_RULE] == 150 and real.invalid_bars == 150
    assert 1 - gen.shares[VWAP_RULE] >= 1 - real.shares[VWAP_RULE] - 0.01
    # exactly the bars drawn from a failing real bar fail; identify the source by its VWAP / close
    ratio_real = np.round(log_vwap_over_close(s[:, 4], s[:, 5], s[:, 3]), 9)
    bars = x.reshape(-1, 6)
    ratio_gen = np.round(log_vwap_over_close(bars[:, 4], bars[:, 5], bars[:, 3]), 9)
    assert np.isin(ratio_gen, ratio_real).all()
    from_bad = np.isin(ratio_gen, ratio_real[bad])
    assert 0 < from_bad.sum() < len(bars)
    assert bar_validity(bars[~from_bad]).invalid_bars == 0
    assert bar_validity(bars[from_bad]).counts[VWAP_RULE] == from_bad.sum()
    # amount / (volume · close) has the real distribution; idle bars keep amount 0
    traded_real, traded_gen = s[:, 4] > 0, bars[:, 4] > 0
    qs = np.linspace(0.02, 0.98, 25)
    spread = np.ptp(np.quantile(ratio_real[traded_real], [0.02, 0.98]))
    assert np.abs(np.quantile(ratio_gen[traded_gen], qs) - np.quantile(ratio_real[traded_real], qs)).max() < 0.05 * spread
    assert (~traded_gen).any() and (bars[~traded_gen, 5] == 0).all()


def test_bootstrap_blocks_have_the_requested_mean_length():
    s = kline_series(2000, seed=4)
    m = get_baseline("bootstrap", block=5)
    m.fit(windows(s, 40, 1), seed=0)
    x = m.sample(500, seed=0)
    r_real = np.round(np.diff(np.log(s[:, 3])), 12)
    pos = {v: i for i, v in enumerate(r_real)}
    r = np.round(np.diff(np.log(x[..., 3]), axis=1), 12)
    idx = np.vectorize(pos.get)(r)
    cont = (np.diff(idx, axis=1) == 1).mean()
    assert cont == pytest.approx(1 - 1 / 5, abs=0.05)


def test_garch_matches_return_scale_and_keeps_geometry_valid():
    s = kline_series(3000, seed=5)
    w = windows(s, 30, 1)
    m = get_baseline("garch")
    rep = m.fit(w, seed=0)
    assert len(windows_to_runs(w)) == 1 and len(m.groups) == 1
    p = m.groups[0]["params"]
    assert 0 <= p["alpha"] < 1 and 0 <= p["beta"] < 1 and p["nu"] > 2
    x = m.sample(2000, seed=0)
    real_r = np.diff(np.log(s[:, 3]))
    gen_r = np.diff(np.log(x[..., 3]), axis=1)
    assert gen_r.std() == pytest.approx(real_r.std(), rel=0.25)
    # VWAP = simulated mean price × a real VWAP / mean-price ratio (1 here): inside every bar at any level
    far = m.sample(500, seed=0, anchors=100 * m.transform.draw_anchors(500, np.random.default_rng(0)))
    assert bar_validity(x).invalid_bars == 0 and bar_validity(far).invalid_bars == 0
    assert (x[..., 1] >= x[..., [0, 3]].max(-1) - 1e-9).all()
    assert (x[..., 2] <= x[..., [0, 3]].min(-1) + 1e-9).all()
    assert np.log(x[..., 4]).mean() == pytest.approx(np.log(s[:, 4]).mean(), abs=0.3)
    assert rep.collapse.ok


_TG = {"steps": 20, "ae_steps": 300, "sup_steps": 100, "hidden": 12, "batch": 32, "log_every": 10}


@pytest.mark.slow
@pytest.mark.parametrize("name,opts,keys,length", [
    ("timevae", {"steps": 15, "filters": [16, 32, 32], "patience": 50, "epoch_windows": 0}, ["loss"], 24),
    ("diffusion-ts", {"steps": 200, "d_model": 16, "heads": 2, "timesteps": 100, "sampling_steps": 10},
     ["loss"], 24),
    ("timegan", _TG, ["ae", "supervised"], 16),
])
def test_training_loss_goes_down(name, opts, keys, length):
    w = windows(kline_series(800, seed=6), length, 4 if name == "timegan" else 2)
    m = get_baseline(name, **opts)
    m.collapse_samples = 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        rep = m.fit(w, seed=0)
    for key in keys:
        h = rep.history[key]
        assert len(h) >= 4
        first, last = np.mean(h[: len(h) // 4]), np.mean(h[-(len(h) // 4):])
        assert last < 0.85 * first, (key, h)


def test_timegan_default_iterations_follow_the_window_not_the_clock():
    m = get_baseline("timegan")
    m.window = 96
    assert m.iterations() == (583, 583, 583)  # 60 000 / (96 + 7)
    m.window = 35
    assert m.iterations() == (1429, 1429, 1429)
    m.window = 2000
    assert m.iterations() == (30, 30, 30)
    deep = get_baseline("timegan", layers=3)
    deep.window = 96
    assert deep.iterations() == (388, 388, 388)  # three GRU layers cost 1.5× as much
    short = get_baseline("timegan", layers=1)
    short.window = 4
    assert short.iterations()[2] == 4000  # capped at 4 000 (docs/baselines.md, TimeGAN)
    explicit = get_baseline("timegan", steps=10, ae_steps=5)
    explicit.window = 96
    assert explicit.iterations() == (5, 10, 10)


def test_diffusion_ema_warms_up_instead_of_keeping_the_random_init():
    """One EMA update (after 10 steps) uses decay 1/10: the EMA is 90 % trained weights, not 0.5 %."""
    import torch

    w = windows(kline_series(300, seed=2), 16, 2)
    opts = {"steps": 10, "d_model": 16, "heads": 2, "timesteps": 50, "sampling_steps": 5, "batch": 16}
    m = get_baseline("diffusion-ts", **opts)
    m.collapse_samples = 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        m.fit(w, seed=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)  # the fit builds its networks right after seeding with the fit seed
        init = m._build()["model"]
    for (name, pe), pm, p0 in zip(m.nets["ema"].named_parameters(), m.nets["model"].parameters(),
                                  init.parameters(), strict=True):
        assert torch.allclose(pe, 0.1 * p0 + 0.9 * pm, atol=1e-6), name


def test_diffusion_default_steps_follow_the_window():
    m = get_baseline("diffusion-ts")
    m.window = 96
    assert (m.training_steps(), m.sampling_steps()) == (4500, 36)
    m.window = 35
    assert (m.training_steps(), m.sampling_steps()) == (10000, 100)  # capped at the original's
    m.window = 1000
    assert (m.training_steps(), m.sampling_steps()) == (488, 10)  # 495 000 / 1 014; at least 10
    explicit = get_baseline("diffusion-ts", steps=7, sampling_steps=3)
    explicit.window = 96
    assert (explicit.training_steps(), explicit.sampling_steps()) == (7, 3)


def test_timevae_decoder_noise_restores_the_spread_of_noisy_channels(train_windows, tmp_path):
    from kronos_synth.baselines.base import collapse_check

    opts = {"steps": 15, "filters": [16, 32, 32], "patience": 50, "epoch_windows": 0, "batch": 32}
    runs = {}
    for noise in (False, True):
        m = get_baseline("timevae", decoder_noise=noise, **opts)
        m.collapse_samples = 50
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollapseWarning)
            m.fit(train_windows, seed=3)
        runs[noise] = (m, collapse_check(train_windows, m.sample(400, seed=5)).ratios)
    plain, noisy = runs[False][1], runs[True][1]
    assert runs[False][0].noise_std is None and len(runs[True][0].noise_std) == 6
    assert noisy["amount"] > plain["amount"] + 0.1  # the per-bar VWAP noise comes back
    m = runs[True][0]
    m.save(tmp_path / "tv")
    assert Baseline.load(tmp_path / "tv").sample(20, seed=9).tobytes() == m.sample(20, seed=9).tobytes()
