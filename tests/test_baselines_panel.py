import numpy as np
import pytest
from _sim import bars_from_returns

from kronos_synth.baselines import BaselineError
from kronos_synth.baselines.panel import ConstantCorrelationGarch, SynchronizedBlockBootstrap
from kronos_synth.metrics.panel import mean_correlation

A = 3


def aligned(t: int, rho: float = 0.7, seed: int = 0) -> np.ndarray:
    """(t, A, 6) bars on common timestamps: GARCH(1,1) returns, Student-t(6) innovations with correlation rho."""
    rng = np.random.default_rng(seed)
    c = np.full((A, A), rho) + (1 - rho) * np.eye(A)
    z = rng.standard_t(6, (t, A)) * np.sqrt(4 / 6)
    z = z @ np.linalg.cholesky(c).T
    r, var = np.zeros((t, A)), np.full(A, 1e-4)
    for k in range(t):
        r[k] = np.sqrt(var) * z[k]
        var = 5e-6 + 0.08 * r[k] ** 2 + 0.87 * var
    return bars_from_returns(r.T, rng).transpose(1, 0, 2)


def off_mean(m: np.ndarray) -> float:
    return float(m[~np.eye(len(m), dtype=bool)].mean())


def check_valid(x: np.ndarray) -> None:
    o, h, lo, c, v = (x[..., k] for k in range(5))
    assert np.isfinite(x).all() and (x[..., :4] > 0).all()
    assert (h >= np.maximum(o, c) - 1e-9).all() and (lo <= np.minimum(o, c) + 1e-9).all() and (v >= 0).all()


def train_corr(x: np.ndarray) -> float:
    return off_mean(np.corrcoef(np.diff(np.log(x[:, :, 3]), axis=0).T))


def test_bootstrap_keeps_cross_correlation_and_is_deterministic():
    x = aligned(600)
    m = SynchronizedBlockBootstrap().fit(x)
    assert m.block_used == pytest.approx(600 ** (1 / 3))
    s = m.sample(200, 30, seed=0)
    assert s.shape == (200, A, 30, 6)
    check_valid(s)
    assert abs(off_mean(mean_correlation(s)) - train_corr(x)) < 0.05
    assert np.array_equal(s, m.sample(200, 30, seed=0)) and not np.array_equal(s, m.sample(200, 30, seed=1))
    # anchors: one real training bar's closes for all assets of a panel
    rows = (np.isclose(x[None, :, :, 3], s[:, None, :, 0, 3])).all(axis=2)
    assert rows.any(axis=1).all()


def test_bootstrap_draws_the_same_blocks_for_every_asset():
    x = aligned(300)
    x[:, 1] = x[:, 0]
    s = SynchronizedBlockBootstrap(block=5).fit([x[:150], x[150:]]).sample(20, 40, seed=3)
    assert np.array_equal(s[:, 0], s[:, 1])


def test_bootstrap_refuses_bad_input():
    with pytest.raises(BaselineError):
        SynchronizedBlockBootstrap(block=0.5)
    with pytest.raises(BaselineError):
        SynchronizedBlockBootstrap().fit([aligned(50), aligned(50)[:, :2]])
    with pytest.raises(BaselineError):
        SynchronizedBlockBootstrap().fit(aligned(50)[:, :, :4])


def test_ccc_garch_reproduces_residual_correlation_and_is_deterministic():
    x = aligned(800)
    m = ConstantCorrelationGarch().fit(x)
    assert m.correlation.shape == (A, A) and abs(off_mean(m.residual_correlation) - 0.7) < 0.05
    s = m.sample(200, 30, seed=0)
    assert s.shape == (200, A, 30, 6)
    check_valid(s)
    assert abs(off_mean(mean_correlation(s)) - off_mean(m.residual_correlation)) < 0.06
    assert np.array_equal(s, m.sample(200, 30, seed=0)) and not np.array_equal(s, m.sample(200, 30, seed=1))


def test_ccc_garch_on_independent_assets_samples_independent_returns():
    m = ConstantCorrelationGarch().fit(aligned(800, rho=0.0, seed=1))
    assert abs(off_mean(mean_correlation(m.sample(200, 30, seed=0)))) < 0.05


def test_ccc_garch_refuses_short_history():
    with pytest.raises(BaselineError):
        ConstantCorrelationGarch().fit(aligned(20))
