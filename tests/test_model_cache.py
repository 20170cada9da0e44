"""KV-cached decoding equals the uncached (reference-semantics) decode_s1 / decode_s2."""

import pytest
import torch

from kronos_synth.model import Kronos, native

CFG = dict(s1_bits=6, s2_bits=5, n_layers=3, d_model=64, n_heads=4, ff_dim=128, ffn_dropout_p=0.1,
           attn_dropout_p=0.1, resid_dropout_p=0.1, token_dropout_p=0.1, learn_te=True)


@pytest.fixture(scope="module")
def model() -> Kronos:
    torch.manual_seed(0)
    m = Kronos(**CFG)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m.eval()


def _tokens(B: int, T: int, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    s1 = torch.randint(0, 2 ** CFG["s1_bits"], (B, T), generator=g)
    s2 = torch.randint(0, 2 ** CFG["s2_bits"], (B, T), generator=g)
    stamp = torch.stack([torch.randint(0, n, (B, T), generator=g) for n in (60, 24, 7, 32, 13)], -1)
    nxt = torch.randint(0, 2 ** CFG["s1_bits"], (B, T), generator=g)  # "sampled" s1 of the next bar
    return s1, s2, stamp, nxt


@torch.no_grad()
def test_prefill_then_single_steps_match_uncached(model):
    B, P, N = 3, 100, 20
    s1, s2, stamp, nxt = _tokens(B, P + N)
    full_logits, full_ctx = model.decode_s1(s1, s2, stamp)  # causal: row p == window [:p+1] last row
    cache = model.init_cache(B, 128)
    logits, ctx = model.decode_s1_cached(s1[:, :P], s2[:, :P], stamp[:, :P], cache)
    assert cache.length == P and logits.shape == (B, P, 2 ** CFG["s1_bits"])
    torch.testing.assert_close(logits, full_logits[:, :P], atol=1e-4, rtol=0)
    for p in range(P - 1, P + N):
        if p >= P:  # one new token per step
            logits, ctx = model.decode_s1_cached(s1[:, p:p + 1], s2[:, p:p + 1], stamp[:, p:p + 1], cache)
            assert logits.shape == (B, 1, 2 ** CFG["s1_bits"]) and cache.length == p + 1
            torch.testing.assert_close(logits[:, 0], full_logits[:, p], atol=1e-4, rtol=0)
        # s2 for the next bar: reference = decode_s2 on the whole window with a one-token query
        expected = model.decode_s2(full_ctx[:, :p + 1], nxt[:, p:p + 1])[:, -1]
        got = model.decode_s2_cached(ctx[:, -1], nxt[:, p], cache)
        assert got.shape == (B, 2 ** CFG["s2_bits"])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
        # (B, 1) ids and (B, 1, D) context give (B, 1, V2)
        torch.testing.assert_close(model.decode_s2_cached(ctx[:, -1:], nxt[:, p:p + 1], cache)[:, 0], got)
    # the rows really differ, so the batch handling is exercised
    assert not torch.allclose(full_logits[0], full_logits[1])


@torch.no_grad()
def test_chunked_prefill_and_truncate(model):
    B, T = 2, 90
    s1, s2, stamp, _ = _tokens(B, T, seed=3)
    full_logits, _ = model.decode_s1(s1, s2, stamp)
    cache = model.init_cache(B, T)
    pieces = [model.decode_s1_cached(s1[:, a:b], s2[:, a:b], stamp[:, a:b], cache)[0]
              for a, b in [(0, 30), (30, 31), (31, 70), (70, 90)]]
    torch.testing.assert_close(torch.cat(pieces, 1), full_logits, atol=1e-4, rtol=0)
    assert cache.free == 0
    with pytest.raises(ValueError, match="reset"):
        model.decode_s1_cached(s1[:, :1], s2[:, :1], stamp[:, :1], cache)
    cache.truncate(50)  # roll back and replay a different continuation
    alt = (s1[:, 50:60] + 1) % 2 ** CFG["s1_bits"]
    got, _ = model.decode_s1_cached(alt, s2[:, 50:60], stamp[:, 50:60], cache)
    s1_alt = torch.cat([s1[:, :50], alt], 1)
    expected, _ = model.decode_s1(s1_alt, s2[:, :60], stamp[:, :60])
    torch.testing.assert_close(got, expected[:, 50:], atol=1e-4, rtol=0)


@torch.no_grad()
def test_reset_and_reprefill_window_and_select(model):
    """A window longer than the context: reset() and prefill the last max_len tokens (reference)."""
    B, T, ctx_len = 2, 80, 48
    s1, s2, stamp, nxt = _tokens(B, T, seed=4)
    cache = model.init_cache(B, ctx_len)
    model.decode_s1_cached(s1[:, :ctx_len], s2[:, :ctx_len], stamp[:, :ctx_len], cache)
    cache.reset()
    w = slice(T - ctx_len, T)
    logits, ctx = model.decode_s1_cached(s1[:, w], s2[:, w], stamp[:, w], cache)
    ref_logits, ref_ctx = model.decode_s1(s1[:, w], s2[:, w], stamp[:, w])
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    # select a batch row: the sub-cache gives that row's s2 logits
    sub = cache.select(torch.tensor([1]))
    assert sub.batch_size == 1 and sub.length == ctx_len
    expected = model.decode_s2(ref_ctx[1:], nxt[1:, :1])[:, -1]
    torch.testing.assert_close(model.decode_s2_cached(ctx[1:, -1], nxt[1:, 0], sub), expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="batch"):
        model.decode_s1_cached(s1[:1, :1], s2[:1, :1], stamp[:1, :1], cache)


@torch.no_grad()
@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_cache_works_with_bf16_weights(model, kernel, monkeypatch):
    if kernel == "torch":
        monkeypatch.setenv("KRONOS_SYNTH_NATIVE", "0")
    elif not native.available():
        pytest.skip("no C compiler")
    B, T = 2, 40
    s1, s2, stamp, nxt = _tokens(B, T, seed=5)
    ref_logits, ref_ctx = model.decode_s1(s1, s2, stamp)
    ref_s2 = model.decode_s2(ref_ctx, nxt[:, -1:])[:, -1]
    bf = Kronos(**CFG)
    bf.load_state_dict(model.state_dict())
    bf = bf.to(torch.bfloat16).eval()
    cache = bf.init_cache(B, T)
    # bf16 under bf16 weights with the compiled kernel; float32 without (PyTorch's is faster in float32)
    assert cache.k[0].dtype == (torch.bfloat16 if kernel == "native" else torch.float32)
    logits, ctx = bf.decode_s1_cached(s1[:, :30], s2[:, :30], stamp[:, :30], cache)
    for p in range(30, T):
        logits, ctx = bf.decode_s1_cached(s1[:, p:p + 1], s2[:, p:p + 1], stamp[:, p:p + 1], cache)
    s2_logits = bf.decode_s2_cached(ctx[:, -1], nxt[:, -1], cache)
    assert logits.dtype == torch.bfloat16
    # bf16 agrees with fp32 in distribution: close probabilities
    for got, want in [(logits[:, -1], ref_logits[:, -1]), (s2_logits, ref_s2)]:
        p_got, p_want = got.float().softmax(-1), want.softmax(-1)
        assert (p_got - p_want).abs().sum(-1).max() < 0.1  # total variation ×2
    # and the bf16 cached path equals the bf16 uncached path closely
    bf_logits, _ = bf.decode_s1(s1, s2, stamp)
    torch.testing.assert_close(logits[:, -1].float(), bf_logits[:, -1].float(), atol=0.06, rtol=0)


@torch.no_grad()
def test_training_forward_sampling_is_seeded(model):
    s1, s2, stamp, nxt = _tokens(2, 30, seed=6)
    runs = [model(s1, s2, stamp, generator=torch.Generator().manual_seed(s))[1] for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    s1_logits, s2_tf = model(s1, s2, stamp, use_teacher_forcing=True, s1_targets=nxt)
    torch.testing.assert_close(s2_tf, model.decode_s2(model.decode_s1(s1, s2, stamp)[1], nxt))
    with pytest.raises(ValueError, match="s1_targets"):
        model(s1, s2, stamp, use_teacher_forcing=True)
    with pytest.raises(ValueError, match="prefilled"):
        model.decode_s2_cached(torch.zeros(2, CFG["d_model"]), nxt[:, 0], model.init_cache(2, 8))
