import numpy as np
import pytest
import torch

from kronos_synth.data.errors import InputError
from kronos_synth.generate.rng import counter_permutation, counter_uniform
from kronos_synth.generate.sampler import SamplingConfig, path_temperatures, sample_from_logits
from kronos_synth.model import native


@pytest.fixture(params=["torch", "native"])
def path(request, monkeypatch):
    """Each draw rule test runs on PyTorch's path and on the compiled kernel (`kernels/sampling.c`)."""
    if request.param == "torch":
        monkeypatch.setenv("KRONOS_SYNTH_NATIVE", "0")
    elif not native.available():
        pytest.skip("no compiled kernels here")
    return request.param


def test_counter_uniform_depends_only_on_its_counter():
    ids = np.arange(1000)
    u = counter_uniform(7, ids, step=3, stream=1)
    # the same id gives the same draw alone, in another batch, in another order
    assert counter_uniform(7, np.array([123]), 3, 1)[0] == u[123]
    rev = counter_uniform(7, ids[::-1], 3, 1)
    np.testing.assert_array_equal(rev[::-1], u)
    # every counter word matters
    assert not np.array_equal(u, counter_uniform(8, ids, 3, 1))
    assert not np.array_equal(u, counter_uniform(7, ids, 4, 1))
    assert not np.array_equal(u, counter_uniform(7, ids, 3, 0))
    # and the draws look uniform
    big = counter_uniform(0, np.arange(200_000), 0, 0)
    assert big.min() >= 0 and big.max() < 1
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002
    hist, _ = np.histogram(big, bins=20, range=(0, 1))
    assert hist.min() > 9500 and hist.max() < 10500
    # neighbouring ids are not correlated
    assert abs(np.corrcoef(big[:-1], big[1:])[0, 1]) < 0.01


def test_counter_permutation_is_a_permutation():
    p = counter_permutation(5, 100, stream=9)
    assert sorted(p.tolist()) == list(range(100))
    assert not np.array_equal(p, np.arange(100))
    np.testing.assert_array_equal(p, counter_permutation(5, 100, stream=9))


def test_top_k_one_is_greedy(path):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1024, generator=g)
    u = counter_uniform(0, np.arange(64), 0, 0)
    ids = sample_from_logits(logits, u, SamplingConfig(temperature=1.0, top_k=1, top_p=1.0))
    assert torch.equal(ids, logits.argmax(-1))


def _empirical(logits, cfg, n=200_000):
    u = counter_uniform(1, np.arange(n), 0, 0)
    ids = sample_from_logits(logits.expand(n, -1), u, cfg)
    return np.bincount(ids.numpy(), minlength=logits.shape[-1]) / n


def test_draws_follow_the_tempered_distribution(path):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    for temp in (0.7, 1.0, 1.5):
        freq = _empirical(logits, SamplingConfig(temperature=temp, top_k=0, top_p=1.0))
        expect = torch.softmax(logits[0] / temp, -1).numpy()
        np.testing.assert_allclose(freq, expect, atol=0.004)


def test_top_p_keeps_the_nucleus_and_renormalizes(path):
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.06, 0.04]]))
    freq = _empirical(logits, SamplingConfig(temperature=1.0, top_k=0, top_p=0.8))
    # nucleus: 0.5 + 0.25 = 0.75 < 0.8, so the token that crosses (0.15) stays; the rest never drawn
    assert freq[3] == 0 and freq[4] == 0
    np.testing.assert_allclose(freq[:3], np.array([0.5, 0.25, 0.15]) / 0.9, atol=0.004)


def test_top_k_and_top_p_both_apply(path):
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    freq = _empirical(logits, SamplingConfig(temperature=1.0, top_k=3, top_p=0.5))
    # top-k keeps 3 (renormalized 0.444, 0.333, 0.222); top-p 0.5 then keeps the first two
    assert freq[2] == 0 and freq[3] == 0
    np.testing.assert_allclose(freq[:2], np.array([4, 3]) / 7, atol=0.004)


@pytest.mark.parametrize("kw", [{"temperature": 0}, {"top_k": -1}, {"top_p": 0}, {"top_p": 1.5},
                                {"temperature_spread": -0.1}, {"temperature_spread": 3.0}])
def test_bad_sampling_settings_are_input_errors(kw):
    with pytest.raises(InputError) as err:
        SamplingConfig(**{"temperature": 1.0, "top_k": 0, "top_p": 0.95, **kw})
    assert err.value.params == tuple(kw) and str(err.value).startswith(next(iter(kw)))
    from kronos_synth.generate.config import GenerationConfig

    with pytest.raises(InputError) as err:
        GenerationConfig(freq="daily", **kw)
    assert err.value.params == tuple(kw)


def test_greedy_breaks_ties_by_the_lowest_token_id(path):
    logits = torch.tensor([[0.0, 3.0, 1.0, 3.0, 3.0], [-1.0, -1.0, -2.0, -5.0, -1.0]])
    ids = sample_from_logits(logits, np.array([0.9, 0.1]), SamplingConfig(temperature=1.0, top_k=1, top_p=1.0))
    assert ids.tolist() == [1, 0]


def test_a_larger_uniform_walks_down_the_probabilities(path):
    """The inverse-CDF draw walks the kept tokens from the most probable down (ties by id)."""
    logits = torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]]))
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0)
    u = np.array([0.05, 0.45, 0.75, 0.95])
    assert sample_from_logits(logits.expand(4, -1), u, cfg).tolist() == [1, 3, 2, 0]


@pytest.mark.skipif(not native.available(), reason="no compiled kernels here")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_kernel_draws_what_pytorchs_path_draws(dtype, monkeypatch):
    """The same rule: only the softmax's float32 rounding differs, so a uniform within ~1e-7 of a boundary
    can pick the neighbour: on 4096 rows of a 1024-token vocabulary (bf16 logits: many exact ties) at most
    a few draws differ."""
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(4096, 1024, generator=g) * 2).to(dtype)
    u = counter_uniform(5, np.arange(4096), 0, 0)
    for cfg in (SamplingConfig(1.0, 0, 0.95), SamplingConfig(0.7, 50, 0.9), SamplingConfig(1.3, 0, 1.0)):
        ours = native.sample(logits, u, cfg.temperature, cfg.top_k, cfg.top_p)
        with monkeypatch.context() as m:
            m.setenv("KRONOS_SYNTH_NATIVE", "0")
            torch_ids = sample_from_logits(logits, u, cfg)
        assert (ours != torch_ids).sum() <= 4
        # rows: a row alone, any thread count, gives the same id
        assert native.sample(logits[17:18], u[17:18], cfg.temperature, cfg.top_k, cfg.top_p)[0] == ours[17]
        assert torch.equal(native.sample(logits, u, cfg.temperature, cfg.top_k, cfg.top_p, threads=1), ours)
        assert torch.equal(native.sample(logits, u, cfg.temperature, cfg.top_k, cfg.top_p, threads=3), ours)


def test_path_temperatures_are_lognormal_around_the_temperature():
    cfg = SamplingConfig(temperature=0.9, top_k=0, top_p=1.0, temperature_spread=0.3)
    ids = np.arange(40_000)
    t = path_temperatures(cfg, 5, ids)
    assert abs(t.mean() / 0.9 - 1) < 0.01  # mean kept: each step's spread is kept on average
    assert abs(np.log(t).std() - 0.3) < 0.005
    assert abs(np.median(t) / (0.9 * np.exp(-0.045)) - 1) < 0.01
    # a path's temperature depends on (seed, its id) only
    np.testing.assert_array_equal(path_temperatures(cfg, 5, ids[[7, 3, 39_999]]), t[[7, 3, 39_999]])
    assert not np.allclose(path_temperatures(cfg, 6, ids[:100]), t[:100])
    assert path_temperatures(SamplingConfig(temperature=0.9, top_k=0, top_p=1.0), 5, ids) is None
