import numpy as np
import pytest
from _sim import bars_from_returns

from kronos_synth.metrics.features import normalize_sequences
from kronos_synth.metrics.panel import (
    DAY_NS,
    HALVES,
    OTHER_DAYS,
    SHUFFLED_ASSETS,
    compare_panels,
    correlation_error,
    correlation_matrices,
    cross_products,
    eigen_spectrum,
    lower_tail_dependence,
    mean_correlation,
    other_days,
    panel_calibration_rows,
    panel_features,
    panel_returns,
    shuffle_assets,
    volume_comovement,
)

A, T = 4, 50


def panels(n: int, rho: float, seed: int) -> np.ndarray:
    """(n, A, T, 6) valid bars whose returns are Gaussian with correlation `rho` between every asset pair."""
    rng = np.random.default_rng(seed)
    c = np.full((A, A), rho) + (1 - rho) * np.eye(A)
    r = rng.standard_normal((n, T, A)) @ np.linalg.cholesky(c).T * 0.01
    bars = bars_from_returns(r.transpose(0, 2, 1).reshape(n * A, T), rng)
    return bars.reshape(n, A, T, 6)


def test_returns_and_correlation_of_correlated_panels():
    x = panels(60, 0.7, seed=0)
    assert panel_returns(x).shape == (60, A, T - 1)
    assert np.allclose(panel_returns(x)[0, 1], np.diff(np.log(x[0, 1, :, 3])))
    corr = correlation_matrices(x)
    assert corr.shape == (60, A, A) and np.allclose(np.diagonal(corr, axis1=1, axis2=2), 1.0)
    m = mean_correlation(x)
    off = m[~np.eye(A, dtype=bool)]
    assert np.all(np.abs(off - 0.7) < 0.05)
    spectrum = eigen_spectrum(x)
    assert spectrum[0] == pytest.approx(1 + (A - 1) * 0.7, abs=0.15)
    assert np.all(np.diff(spectrum) <= 0) and spectrum.sum() == pytest.approx(A)


def test_zero_variance_panels_are_dropped_and_counted():
    x = panels(30, 0.7, seed=1)
    x[3, 2, :, :4] = 100.0  # a frozen asset: no return variance in panel 3
    corr = correlation_matrices(x)
    assert np.isnan(corr[3, 2]).all() and np.isfinite(corr[4]).all()
    err = correlation_error(x, x)
    assert err.dropped_real == 1 and err.frobenius == 0.0
    assert abs(err.mean_pairwise_real - 0.7) < 0.06


def test_correlation_error_separates_independent_from_correlated():
    real, same, indep = panels(60, 0.7, 0), panels(60, 0.7, 1), panels(60, 0.0, 2)
    good, bad = correlation_error(real, same), correlation_error(real, indep)
    assert good.frobenius < 0.2 and bad.frobenius > 2.0
    assert abs(bad.mean_pairwise_synthetic) < 0.05
    assert bad.mean_abs_pairwise_diff == pytest.approx(0.7, abs=0.06)


def test_lower_tail_dependence_is_higher_for_correlated_assets():
    corr, indep = lower_tail_dependence(panels(60, 0.7, 0)), lower_tail_dependence(panels(60, 0.0, 1))
    assert corr > 0.3 and indep < 0.1
    twins = panels(20, 0.7, 2)
    twins[:, 1] = twins[:, 0]
    twins[:, 2:] = twins[:, :1]
    assert lower_tail_dependence(twins) == pytest.approx(1.0)


def test_compare_panels_with_reference_and_to_dict():
    real, synth, ref = panels(40, 0.7, 0), panels(40, 0.0, 1), panels(40, 0.7, 2)
    c = compare_panels(real, synth, real_reference=ref, discriminative=False)
    assert c.spectrum.largest_real == pytest.approx(3.1, abs=0.2)
    assert c.spectrum.largest_synthetic == pytest.approx(1.0, abs=0.3)
    assert c.spectrum.relative_error > 0.5 and c.reference.spectrum.relative_error < 0.1
    assert c.tail_dependence_real > c.tail_dependence_synthetic
    assert c.reference.correlation.frobenius < c.correlation.frobenius / 5
    d = c.to_dict()
    assert d["discriminative"] is None and d["reference"]["discriminative"] is None
    assert len(d["spectrum"]["real"]) == A


def test_shuffle_assets_keeps_marginals_and_breaks_co_movement():
    x = panels(30, 0.7, 0)
    s = shuffle_assets(x, np.random.default_rng(0))
    for a in range(A):  # each asset's set of sequences is unchanged
        assert np.array_equal(np.sort(s[:, a, -1, 3]), np.sort(x[:, a, -1, 3]))
    src = np.array([[np.flatnonzero((x[:, a, :, 3] == s[i, a, :, 3]).all(axis=1))[0] for a in range(A)]
                    for i in range(len(x))])
    assert all(len(set(row)) == A for row in src)  # the assets of a panel come from different panels


def test_shuffle_assets_within_groups():
    x = panels(40, 0.7, 0)
    groups = np.arange(40) % 4  # e.g. the time of day a panel starts
    s = shuffle_assets(x, np.random.default_rng(1), groups=groups)
    src = np.array([[np.flatnonzero((x[:, a, :, 3] == s[i, a, :, 3]).all(axis=1))[0] for a in range(A)]
                    for i in range(len(x))])
    assert (groups[src] == groups[:, None]).all()  # every asset drawn from its panel's group
    assert all(len(set(row)) == A for row in src)
    for a in range(A):
        assert np.array_equal(np.sort(s[:, a, -1, 3]), np.sort(x[:, a, -1, 3]))
    # without groups: the draw every committed calibration row used (one permutation and one shift per asset)
    rng = np.random.default_rng(3)
    perm, shift = rng.permutation(40), rng.choice(40, size=A, replace=False)
    old = x[perm[(np.arange(40)[:, None] + shift[None, :]) % 40], np.arange(A)[None, :]]
    assert np.array_equal(shuffle_assets(x, np.random.default_rng(3)), old)


def test_calibration_rows():
    rows = panel_calibration_rows(panels(60, 0.7, 0), seed=0, discriminative=False)
    assert set(rows) == {HALVES, SHUFFLED_ASSETS}
    halves, shuffled = rows[HALVES].correlation, rows[SHUFFLED_ASSETS].correlation
    assert rows[HALVES].n_real == rows[HALVES].n_synthetic == 30
    assert abs(halves.mean_pairwise_real - 0.7) < 0.05 and abs(halves.mean_pairwise_synthetic - 0.7) < 0.05
    assert abs(shuffled.mean_pairwise_synthetic) < 0.06 and shuffled.frobenius > 10 * halves.frobenius


def test_panel_features_layout_and_volume_free():
    x = panels(6, 0.7, 0)
    pairs = A * (A - 1) // 2
    f = panel_features(x)
    assert f.shape == (6, T, A * 6 + 2 * pairs)  # + return and log-volume products of every pair
    assert np.allclose(f[:, :, 12:18], normalize_sequences(x[:, 2]))
    assert panel_features(x, include_volume=False).shape == (6, T, A * 4 + pairs)
    assert panel_features(x, cross=False).shape == (6, T, A * 6)


def test_cross_products_end_at_the_correlation():
    x = panels(200, 0.7, 0)
    c = cross_products(np.log(x[..., 3]), clip=1e9)  # unclipped: the running mean ends at the correlation
    assert c.shape == (200, T, A * (A - 1) // 2) and np.all(c[:, 0] == 0)
    corr = correlation_matrices(x)
    i, j = np.triu_indices(A, k=1)
    np.testing.assert_allclose(c[:, -1], corr[:, i, j], atol=1e-9)
    clipped = cross_products(np.log(x[..., 3]))
    assert clipped.min() >= -4 and clipped.max() <= 4
    assert 0 < corr[:, i, j].mean() - clipped[:, -1].mean() < 0.06  # clipping the joint extremes pulls it down a little


def test_tiny_panel_discriminative_run():
    real, synth = panels(16, 0.7, 0), panels(16, 0.0, 1)
    synth[..., 4:] = 0.0  # volume-free synthetic set: volume/amount dropped for both
    c = compare_panels(real, synth, repeats=1, epochs=1, seed=0)
    d = c.discriminative
    assert d.settings["n_features"] == A * 4 + A * (A - 1) // 2 and d.settings["volume_free"] is True
    assert 0.0 <= d.score.mean <= 1.0 and d.runs[0].n_test == 16


def test_tiny_calibration_rows_split_real_panels_by_time():
    real = panels(40, 0.7, 0)
    times = np.stack([np.arange(40) * T, np.arange(40) * T + T - 1], axis=1)  # back-to-back panels
    rows = panel_calibration_rows(real, seed=0, real_time=times, repeats=1, epochs=1)
    assert "time blocks" in rows[HALVES].discriminative.settings["split"]
    assert "synthetic: random halves" in rows[SHUFFLED_ASSETS].discriminative.settings["split"]


def test_other_days_keeps_the_time_of_day_and_needs_intraday_panels():
    x = panels(48, 0.7, 0)
    quarter = 15 * 60 * 10**9
    start = np.arange(48) * 8 * 3 * quarter  # every 6 hours for 12 days: 4 times of day, 12 panels each
    s = other_days(x, start, np.random.default_rng(0))
    src = np.array([[np.flatnonzero((x[:, a, :, 3] == s[i, a, :, 3]).all(axis=1))[0] for a in range(A)]
                    for i in range(len(x))])
    tod = start % DAY_NS
    assert (tod[src] == tod[:, None]).all() and all(len(set(row)) == A for row in src)
    assert other_days(x, np.arange(48) * DAY_NS, np.random.default_rng(0)) is None  # daily: one time of day
    assert other_days(x, np.arange(48) * quarter, np.random.default_rng(0)) is None  # < A panels per time of day
    times = np.stack([start, start + quarter * (T - 1)], axis=1)
    rows = panel_calibration_rows(np.concatenate([x, x]), seed=0, real_time=np.concatenate([times, times]),
                                  discriminative=False)
    assert abs(rows[OTHER_DAYS].correlation.mean_pairwise_synthetic) < 0.1


def test_volume_comovement_sees_shared_activity_only():
    """Volumes driven by one shared activity factor co-move (≈ the factor's share of the log-volume change
    variance); independent volumes do not; the returns do not enter it; constant volumes are skipped."""
    rng = np.random.default_rng(5)
    bars = panels(60, 0.7, 3)
    shared = rng.standard_normal((60, 1, T))
    own = rng.standard_normal((60, A, T))
    coupled, independent = bars.copy(), bars.copy()
    coupled[..., 4] = np.exp(np.cumsum(0.3 * (shared + own), axis=-1)) * 1e3  # log-volume changes: ρ = 0.5
    independent[..., 4] = np.exp(np.cumsum(0.3 * own, axis=-1)) * 1e3
    assert volume_comovement(coupled) == pytest.approx(0.5, abs=0.05)
    assert abs(volume_comovement(independent)) < 0.05
    flat = coupled.copy()
    flat[:30, 0, :, 4] = 5.0  # asset 0 never changes volume in 30 panels: those panels are skipped
    assert volume_comovement(flat) == pytest.approx(volume_comovement(coupled[30:]))
    c = compare_panels(coupled, independent, discriminative=False)
    assert c.to_dict()["volume_comovement"]["real"] == pytest.approx(volume_comovement(coupled))
