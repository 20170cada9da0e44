"""Peer metrics: exact identities, and the acceptance of issue #20 — two independent draws of one simulated
market (GARCH(1,1) with Student-t innovations: volatility clustering, fat tails) score near each metric's
ideal value, while shuffled bars or noise bars score far from it."""

import json

import numpy as np
import pytest
import torch
from _sim import bars_from_returns, garch_returns

from kronos_synth.metrics.calibration import DISJOINT_HALVES, SHUFFLED, SYNTHETIC, TRAIN_PERIOD, peer_table
from kronos_synth.metrics.context_fid import (
    EncoderSettings,
    context_fid,
    embed,
    fit_encoder,
    fit_encoders,
    frechet_distance,
    hierarchical_contrastive_loss,
)
from kronos_synth.metrics.features import shuffle_bars
from kronos_synth.metrics.peers import (
    correlational_score,
    k_returns,
    mean_correlation,
    peer_metrics,
    return_wasserstein,
)
from kronos_synth.metrics.signature import linear_mmd2, signature, signature_mmd, signature_product
from kronos_synth.metrics.stylized import stylized_facts

T, N = 35, 1000


def _market(n: int, rng: np.random.Generator) -> np.ndarray:
    return bars_from_returns(garch_returns(n, T, rng, alpha=0.1, beta=0.85, df=4), rng)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Every price field drawn on its own around 100, volume independent of everything."""
    p = 100 * np.exp(rng.normal(0, 0.01, (n, T, 4)))
    v = np.exp(rng.normal(10, 0.3, (n, T, 1)))
    return np.concatenate([p, v, v * p.mean(-1, keepdims=True)], axis=-1)


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    real, real2, train = _market(N, rng), _market(N, rng), _market(N, rng)
    return {"real": real, "real2": real2, "train": train, "shuffled": shuffle_bars(real2, rng), "noise": _noise(N, rng)}


@pytest.fixture(scope="module")
def encoders(sets):
    return fit_encoders(sets["train"], seed=0)  # the default settings, trained on the "train period"


# --- signatures ----------------------------------------------------------------------------------


def test_signature_levels_are_the_known_iterated_integrals():
    rng = np.random.default_rng(1)
    path = rng.normal(size=(4, 9, 3))
    s = signature(path, 4)
    assert s.shape == (4, 3 + 9 + 27 + 81)
    inc = path[:, -1] - path[:, 0]
    assert np.allclose(s[:, :3], inc)  # level 1: the total increment
    l2 = s[:, 3:12].reshape(4, 3, 3)
    assert np.allclose((l2 + l2.transpose(0, 2, 1)) / 2, inc[:, :, None] * inc[:, None, :] / 2)
    # a straight line's signature is the tensor exponential of its increment
    line = signature(np.stack([np.zeros(2), [2.0, -1.0]])[None], 3)[0]
    d = np.array([2.0, -1.0])
    assert np.allclose(line[6:], np.einsum("i,j,k->ijk", d, d, d).ravel() / 6)
    # (0,0) → (1,0) → (1,1): ∫x dy = 1, ∫y dx = 0 (the Lévy area is 1/2)
    corner = signature(np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]]), 2)[0]
    assert np.allclose(corner[2:], [0.5, 1.0, 0.0, 0.5])


def test_chen_identity_signature_of_a_concatenation_is_the_product():
    rng = np.random.default_rng(2)
    path = rng.normal(size=(5, 12, 2))
    for cut in (1, 5, 10):  # the parts share the cut point
        left, right = signature(path[:, :cut + 1], 4), signature(path[:, cut:], 4)
        assert np.allclose(signature_product(left, right, 2, 4), signature(path, 4))


def test_linear_mmd2_is_the_kernel_u_statistic():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1, size=(9, 4))

    def off_diag_mean(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    want = off_diag_mean(x @ x.T) + off_diag_mean(y @ y.T) - 2 * (x @ y.T).mean()
    assert linear_mmd2(x, y) == pytest.approx(want)


def test_signature_mmd_accepts_real_vs_real_and_rejects_shuffled_and_noise(sets):
    rr = signature_mmd(sets["real"], sets["real2"], permutations=200)
    assert rr.p_value > 0.2 and abs(rr.mmd2) < 0.05
    for bad in ("shuffled", "noise"):
        r = signature_mmd(sets["real"], sets[bad], permutations=200)
        assert r.p_value == pytest.approx(1 / 201) and r.mmd2 > 0.3, bad  # no permutation reaches it
    assert rr.settings["channels"] == ["time", "cumulative close log return"]
    assert len(signature_mmd(sets["real"], sets["real2"], volume=True, permutations=10).settings["channels"]) == 3


# --- Context-FID ---------------------------------------------------------------------------------


def test_frechet_distance_identities():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3000, 5))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)
    # 1-D Gaussians: (μ1 − μ2)² + (σ1 − σ2)²
    b = rng.normal(1.0, 2.0, size=(200_000, 1))
    c = rng.normal(0.0, 1.0, size=(200_000, 1))
    assert frechet_distance(b, c) == pytest.approx(1 + 1, abs=0.05)
    # collapsed embeddings (singular covariances) still give a finite number
    assert np.isfinite(frechet_distance(np.zeros((50, 3)), rng.normal(size=(50, 3))))


def test_contrastive_loss_is_low_when_views_agree_and_instances_differ():
    z = torch.nn.functional.one_hot(torch.arange(8 * 8) % 64, 64).float().reshape(8, 8, 64) * 20
    agree = hierarchical_contrastive_loss(z, z)
    rand = hierarchical_contrastive_loss(torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(0)),
                                         torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(1)))
    assert agree < 0.5 < rand


def test_encoder_is_seeded_and_embeds_one_vector_per_window(sets):
    s = EncoderSettings(iterations=3)
    a, b = fit_encoder(sets["train"][:64], settings=s, seed=5), fit_encoder(sets["train"][:64], settings=s, seed=5)
    ea = embed(a, sets["real"][:10])
    assert ea.shape == (10, s.output) and np.array_equal(ea, embed(b, sets["real"][:10]))
    state = torch.random.get_rng_state()
    fit_encoder(sets["train"][:64], settings=s, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched


def test_context_fid_real_vs_real_near_zero_shuffled_and_noise_far(sets, encoders):
    rr = context_fid(sets["real"], sets["real2"], encoders=encoders)
    sh = context_fid(sets["real"], sets["shuffled"], encoders=encoders)
    no = context_fid(sets["real"], sets["noise"], encoders=encoders)
    assert rr.score.mean < 0.2
    assert sh.score.mean > 20 * rr.score.mean and no.score.mean > 20 * rr.score.mean
    assert rr.n_reference == N and rr.settings["pooling"] == "max over time" and rr.settings["iterations"] == 300


# --- correlational score, return W1 --------------------------------------------------------------


def test_mean_correlation_of_known_features():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 50, 1))
    c = mean_correlation(np.concatenate([x, 2 * x + 1, -x, rng.normal(size=(20, 50, 1))], axis=-1))
    assert np.allclose(c[0, :3], [1, 1, -1]) and abs(c[0, 3]) < 0.1
    # a constant feature in a sequence has no correlation there: left out, not a NaN in the mean
    x2 = np.concatenate([x, x], axis=-1)
    x2[0, :, 1] = 3.0
    assert np.allclose(mean_correlation(x2)[0, 1], 1)


def test_correlational_score_real_vs_real_near_zero_noise_far(sets):
    rr = correlational_score(sets["real"], sets["real2"])
    assert rr < 0.02
    assert correlational_score(sets["real"], sets["noise"]) > 0.3
    # lag-0 correlations ignore the order of bars: shuffled bars score exactly like their source
    assert correlational_score(sets["real"], sets["shuffled"]) == pytest.approx(rr)


def test_return_wasserstein_real_vs_real_small_shuffled_and_noise_far(sets):
    assert len(k_returns(sets["real"], 5)) == N * (T - 5)
    rr = return_wasserstein(sets["real"], sets["real2"], lags=(1, 5, 20, 35))
    assert [w.k for w in rr] == [1, 5, 20, 35]
    assert all(w.w1_scaled < 0.1 for w in rr[:3])
    assert np.isnan(rr[3].w1) and rr[3].to_dict()["w1"] is None  # k ≥ T: no k-return in a window
    assert rr[1].w1_scaled == pytest.approx(rr[1].w1 / k_returns(sets["real"], 5).std())
    for bad in ("shuffled", "noise"):
        w = return_wasserstein(sets["real"], sets[bad])
        assert w[0].w1_scaled > 1.0 and w[1].w1_scaled > 0.2, bad


# --- one result, the table -----------------------------------------------------------------------


def test_peer_metrics_gathers_every_number_json_safe(sets, encoders):
    res = peer_metrics(sets["real"], sets["shuffled"], encoders=encoders, permutations=50, lags=(1, 5, 20, 40))
    fr, fs = stylized_facts(sets["real"], res.max_lag), stylized_facts(sets["shuffled"], res.max_lag)
    assert res.max_lag == T // 4
    assert res.acf_abs_returns == pytest.approx(np.mean(np.abs(fr["acf_abs_returns"] - fs["acf_abs_returns"])))
    assert res.leverage == pytest.approx(np.mean(np.abs(fr["leverage"] - fs["leverage"])))
    assert res.gain_loss_ratio == pytest.approx(abs(fr["gain_loss_ratio"] - fs["gain_loss_ratio"]))
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["w1"][3]["w1_scaled"] is None and d["w1_scaled_mean"] == pytest.approx(res.w1_scaled_mean)
    assert d["context_fid"]["score"]["mean"] > 1 and d["signature"]["p_value"] < 0.05


def test_peer_table_calibration_rows(sets, encoders):
    real_test = np.concatenate([sets["real"], sets["real2"]])
    tab = peer_table(real_test, sets["noise"], sets["train"], encoders=encoders, permutations=100)
    assert list(tab) == [SYNTHETIC, TRAIN_PERIOD, DISJOINT_HALVES, SHUFFLED]
    assert tab[DISJOINT_HALVES].n_real == tab[DISJOINT_HALVES].n_synthetic == N
    for good in (TRAIN_PERIOD, DISJOINT_HALVES):  # real vs real: near every ideal value
        r = tab[good]
        assert r.context_fid.score.mean < 0.2 and r.correlational < 0.02 and r.w1_scaled_mean < 0.1, good
        assert r.acf_abs_returns < 0.05 and r.signature.p_value > 0.05, good
    for bad in (SYNTHETIC, SHUFFLED):  # noise and shuffled bars: far from it
        r = tab[bad]
        assert r.context_fid.score.mean > 2 and r.w1_scaled_mean > 0.4 and r.acf_abs_returns > 0.08, bad
        assert r.signature.p_value < 0.02, bad
    assert list(peer_table(real_test, sets["noise"], None, encoders=encoders, permutations=10,
                           calibration=False)) == [SYNTHETIC]
