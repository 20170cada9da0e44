"""Diversity coverage and the TimeGAN predictive score on constructed sets."""

import numpy as np
import pytest

from kronos_synth.metrics.discriminative import predictive_score
from kronos_synth.metrics.diversity import diversity, knn_coverage


def test_knn_coverage_same_vs_disjoint(rng):
    a, b = rng.normal(size=(300, 10)), rng.normal(size=(300, 10))
    p, r = knn_coverage(a, b, k=5)
    assert p > 0.8 and r > 0.8
    p, r = knn_coverage(a, b + 20, k=5)
    assert p == 0.0 and r == 0.0
    # a collapsed generator: precise but no recall
    p, r = knn_coverage(a, rng.normal(scale=0.05, size=(300, 10)), k=5)
    assert p > 0.9 and r < 0.3


def test_joint_embeddings_and_kde(rng):
    real = rng.normal(size=(150, 12, 4))
    syn = rng.normal(size=(120, 12, 4)) + 3
    close_r = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (150, 12)), axis=1))
    close_s = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (120, 12)), axis=1))
    d = diversity(real, syn, real_close=close_r, synthetic_close=close_s, max_n=100, seed=0)
    assert d.n_real == 100 and d.n_synthetic == 100
    assert d.tsne_real.shape == (100, 2) and d.pca_synthetic.shape == (100, 2)
    # one joint fit: the shifted set separates along PC1
    assert abs(d.pca_real[:, 0].mean() - d.pca_synthetic[:, 0].mean()) > 10
    assert d.precision < 0.05
    # synthetic returns are 3x as volatile → flatter KDE at 0
    mid = len(d.kde_grid) // 2
    assert d.kde_real[mid] > 2 * d.kde_synthetic[mid]
    assert np.trapezoid(d.kde_real, d.kde_grid) == pytest.approx(1, abs=0.02)


def test_predictive_score_prefers_matching_synthetic(rng):
    t = np.arange(24)
    ph = rng.uniform(0, 2 * np.pi, (300, 1))
    # the last feature one step ahead is a function of the current inputs (5 features → GRU(2))
    real = np.stack([np.sin(t / 3 + ph), np.cos(t / 3 + ph), np.sin(t / 3 + ph + 0.5), np.cos(t / 3 + ph + 0.5),
                     np.sin(t / 3 + ph + 0.33)], -1)
    good = real[rng.permutation(300)] + rng.normal(0, 0.05, real.shape)
    bad = rng.normal(size=real.shape)
    kw = dict(repeats=1, iterations=500, seed=0)
    good_mae, bad_mae = predictive_score(real, good, **kw).mae.mean, predictive_score(real, bad, **kw).mae.mean
    assert good_mae < 0.5 * bad_mae
