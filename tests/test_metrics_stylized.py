"""Stylized facts on simulated returns with known properties."""

import numpy as np
from _sim import bars_from_returns, garch_returns

from kronos_synth.metrics.stylized import compare_stylized, stylized_facts


def test_gaussian_returns_have_no_excess_kurtosis_and_no_autocorrelation(rng):
    bars = bars_from_returns(rng.normal(0, 0.01, (2000, 36)), rng)
    f = stylized_facts(bars)
    assert f["max_lag"] == 9
    assert abs(f["excess_kurtosis"]) < 0.15
    assert np.abs(f["acf_returns"]).max() < 0.03
    assert np.abs(f["acf_abs_returns"]).max() < 0.03


def test_student_t3_hill_index_is_near_three(rng):
    bars = bars_from_returns(rng.standard_t(3, (2000, 36)) * 0.005, rng)
    f = stylized_facts(bars)
    assert abs(f["hill_left"] - 3) <= 0.7 and abs(f["hill_right"] - 3) <= 0.7
    assert f["excess_kurtosis"] > 3


def test_garch_returns_cluster_volatility(rng):
    bars = bars_from_returns(garch_returns(1000, 96, rng, omega=1e-6, alpha=0.15, beta=0.8), rng)
    f = stylized_facts(bars)
    assert f["max_lag"] == 24
    assert f["acf_abs_returns"][:5].min() > 0.03
    assert f["acf_sq_returns"][0] > 0.05
    assert abs(f["acf_returns"][0]) < 0.05


def test_compare_reports_real_synthetic_and_baseline(rng):
    real = bars_from_returns(rng.normal(0, 0.01, (500, 36)), rng)
    train = bars_from_returns(rng.normal(0, 0.01, (500, 36)), rng)
    fake = bars_from_returns(rng.standard_t(3, (500, 36)) * 0.01, rng)
    res = compare_stylized(real, fake, train)
    k = res.row("excess_kurtosis")
    assert k.abs_diff == abs(k.real - k.synthetic) and k.abs_diff > 2
    assert k.baseline < 0.5  # two Gaussian sets agree
    assert len(res.row("acf_returns").real) == res.max_lag == 9
    assert len(res.row("aggregated_kurtosis").synthetic) == 4
    assert np.isfinite(res.row("volume_abs_return_corr").real)
