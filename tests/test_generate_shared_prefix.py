"""Shared-prefix decoding: the samples of a context keep one copy of its K/V and attend to it with stacked
queries (log-sum-exp merge with their own suffix). It must equal per-row attention to float32 rounding,
give the same tokens, and give every row the same bytes in any batch."""

import numpy as np
import pytest
import torch

from kronos_synth.generate.sampler import SamplingConfig, descending_order, sample_tokens, shared_groups
from kronos_synth.model import Kronos, SharedPrefixCache
from kronos_synth.model.cache import SharedKV
from kronos_synth.model.layers import shared_prefix_attention, single_query_attention

CFG = dict(s1_bits=6, s2_bits=5, n_layers=2, d_model=64, n_heads=4, ff_dim=128, ffn_dropout_p=0.0,
           attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
TOP_P = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95)


@pytest.fixture(scope="module")
def model() -> Kronos:
    torch.manual_seed(0)
    m = Kronos(**CFG)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return m.eval()


def _contexts(C: int, L: int, horizon: int, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    s1 = torch.randint(0, 2 ** CFG["s1_bits"], (C, L), generator=g)
    s2 = torch.randint(0, 2 ** CFG["s2_bits"], (C, L), generator=g)
    stamps = torch.stack([torch.randint(0, n, (C, L + horizon), generator=g) for n in (60, 24, 7, 32, 13)], -1)
    return s1, s2, stamps.float()


@torch.no_grad()
def test_shared_prefix_attention_equals_per_row_attention():
    """Groups with empty slots, rows of several contexts, suffix lengths 0 (the first s2 step) to 7; a row's
    bytes do not depend on the other rows, the group numbering or the thread count."""
    g = torch.Generator().manual_seed(0)
    B, H, P, K, G = 11, 3, 9, 8, 4
    group = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3, 4, 4])  # group 1: one row; groups 3 and 4: partial
    place = torch.tensor([1, 2, 3, 0, 0, 1, 2, 3, 2, 0, 3])
    pk, pv = torch.randn(5, H, P, K, generator=g), torch.randn(5, H, P, K, generator=g)
    threads = torch.get_num_threads()
    for S in (0, 1, 7):
        q = torch.randn(B, H, 1, K, generator=g) * 3
        # the suffix holds S + 3 positions; the last 3 are not written yet and must get no weight
        k, v = torch.randn(B, H, S + 3, K, generator=g), torch.randn(B, H, S + 3, K, generator=g)
        kv = SharedKV(pk, pv, k, v, S, group, place, G)
        got = shared_prefix_attention(q, kv)
        want = single_query_attention(q, torch.cat([pk[group], k[:, :, :S]], 2), torch.cat([pv[group], v[:, :, :S]], 2))
        assert got.shape == (B, H, 1, K)
        torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)
        # rows 4..8 alone: groups 2 and 3 renumbered 0 and 1
        sub = SharedKV(pk[2:4], pv[2:4], k[4:9], v[4:9], S, group[4:9] - 2, place[4:9], G)
        assert torch.equal(shared_prefix_attention(q[4:9], sub), got[4:9])
        try:
            torch.set_num_threads(2)
            assert torch.equal(shared_prefix_attention(q, kv), got)
        finally:
            torch.set_num_threads(threads)


def _shared_cache(model, s1, s2, stamps, context_of_row, ids, G, suffix_len):
    """Prefill each distinct context once, then one prefix copy per group (what sample_tokens does)."""
    per_context = model.init_cache(len(s1), s1.shape[1])
    model.decode_s1_cached(s1, s2, stamps[:, :s1.shape[1]], per_context)
    group_context, group, place = shared_groups(context_of_row, ids, G)
    dtype = next(model.parameters()).dtype
    return SharedPrefixCache.from_prefix(per_context, group_context, group, place, G, suffix_len, prefix_dtype=dtype)


def _steps(model, cache, logits, ctx, ids, stamps, L, steps):
    """`steps` teacher-forced single-token steps (tokens drawn per sequence id, so a row gets the same
    tokens in any batch) → the s1 and s2 logits of every step, (B, steps · (V1 + V2)) float32."""
    g = torch.Generator().manual_seed(9)
    nxt1 = torch.randint(0, 2 ** CFG["s1_bits"], (100, steps), generator=g)[torch.as_tensor(ids)]
    nxt2 = torch.randint(0, 2 ** CFG["s2_bits"], (100, steps), generator=g)[torch.as_tensor(ids)]
    out = []
    for i in range(steps):
        s2_logits = model.decode_s2_cached(ctx[:, -1], nxt1[:, i], cache)
        out += [logits[:, -1].float(), s2_logits.float()]
        t = L + i
        logits, ctx = model.decode_s1_cached(nxt1[:, i:i + 1], nxt2[:, i:i + 1], stamps[:, t:t + 1], cache)
    return torch.cat(out, 1)


@torch.no_grad()
def _run_shared(model, s1, s2, stamps, ci, ids, G, steps):
    """Rows continuing contexts ci through a shared-prefix cache (groups of G)."""
    L = s1.shape[1]
    uniq, inverse = torch.unique(ci, return_inverse=True)
    cache = _shared_cache(model, s1[uniq], s2[uniq], stamps[uniq], inverse, ids, G, steps)
    # logits and hidden state at the last context position: the prefill's (rows of a context are equal)
    logits, ctx = model.decode_s1_cached(s1[ci], s2[ci], stamps[ci, :L], model.init_cache(len(ci), L), last_only=True)
    return _steps(model, cache, logits, ctx, ids, stamps[ci], L, steps)


@torch.no_grad()
def _run_per_row(model, s1, s2, stamps, ci, ids, steps):
    """The same rows through the per-row cache (one copy of the context per row)."""
    L = s1.shape[1]
    cache = model.init_cache(len(ci), L + steps)
    logits, ctx = model.decode_s1_cached(s1[ci], s2[ci], stamps[ci, :L], cache, last_only=True)
    return _steps(model, cache, logits, ctx, ids, stamps[ci], L, steps)


@torch.no_grad()
def test_shared_prefix_cache_logits_equal_per_row_cache_and_are_batch_invariant(model):
    """Every decode step's s1 and s2 logits equal the per-row cache's to float32 rounding, and a row's logits
    are the same bytes whichever rows share its batch. Batches of at least 4 rows:
    MKL runs the linear layers of 1–3 rows with other kernels that round differently (the per-row path too;
    tokens only change if a draw lands within that rounding of a boundary). One torch thread: with two, MKL
    splits the linear layers' rows by batch size too, so the bytes are batch-invariant per thread count only."""
    from kronos_synth.metrics.stats import torch_threads

    C, L, steps, G = 4, 16, 20, 3  # 20 steps: the suffix grows past one SUFFIX_BLOCK (16 positions)
    s1, s2, stamps = _contexts(C, L, steps)
    ids = np.arange(1, 12)  # 11 sequences, 3 per context: contexts straddle batch boundaries below
    ci = torch.as_tensor(ids // G)
    with torch_threads(1):
        full = _run_shared(model, s1, s2, stamps, ci, ids, G, steps)
        torch.testing.assert_close(full, _run_per_row(model, s1, s2, stamps, ci, ids, steps), atol=1e-5, rtol=1e-5)
        for rows in (slice(0, 5), slice(4, 11), slice(3, 7)):
            part = _run_shared(model, s1, s2, stamps, ci[rows], ids[rows], G, steps)
            assert torch.equal(part, full[rows])


@torch.no_grad()
def test_bf16_shared_prefix_is_batch_invariant_and_close_to_fp32(model):
    bf = Kronos(**CFG)
    bf.load_state_dict(model.state_dict())
    bf = bf.to(torch.bfloat16).eval()
    C, L, steps, G = 3, 16, 5, 4
    s1, s2, stamps = _contexts(C, L, steps, seed=3)
    ids = np.arange(2, 12)
    ci = torch.as_tensor(ids // G)
    full = _run_shared(bf, s1, s2, stamps, ci, ids, G, steps)
    assert torch.equal(_run_shared(bf, s1, s2, stamps, ci[3:], ids[3:], G, steps), full[3:])
    want = _run_per_row(model, s1, s2, stamps, ci, ids, steps)
    V1, V2 = 2 ** CFG["s1_bits"], 2 ** CFG["s2_bits"]
    for j in range(steps):
        for lo, n in ((j * (V1 + V2), V1), (j * (V1 + V2) + V1, V2)):
            p_got, p_want = full[:, lo:lo + n].softmax(-1), want[:, lo:lo + n].softmax(-1)
            assert (p_got - p_want).abs().sum(-1).max() < 0.1  # total variation × 2


@pytest.mark.parametrize("samples_per_context", [2, 3, 5])
def test_same_tokens_as_per_row_attention_at_any_batch_size(model, samples_per_context):
    """sample_tokens with the shared prefix gives the per-row cache's tokens, at several batch sizes: batches
    hold rows of several contexts, and a context's samples straddle two batches (ids start at 2). (Equal
    tokens from float32-equal logits: a draw whose top-p cut or uniform fell within rounding of a boundary
    could differ — these seeds have none; at horizon 30 the one-row batches of samples_per_context 3 hit
    one, in the per-row path as well, whose linear layers round differently for 1-3 rows.)"""
    S, C, L, horizon = samples_per_context, 5, 20, 20  # the suffix grows past SUFFIX_BLOCK
    s1, s2, stamps = _contexts(C, L, horizon, seed=4)
    ids = np.arange(2, 2 + 3 * S + 4)
    ci = torch.as_tensor(ids // S) % C  # sequence i continues context perm[i // S] (here perm = identity)
    want = sample_tokens(model, s1[ci], s2[ci], stamps[ci], horizon, TOP_P, seed=7, sequence_ids=ids,
                         shared_prefix=False)
    assert len(torch.unique(want[0])) > 5  # real draws, not a constant continuation
    for batch in (len(ids), 7, 4, 1):
        got = [sample_tokens(model, s1[ci[lo:lo + batch]], s2[ci[lo:lo + batch]], stamps[ci[lo:lo + batch]],
                             horizon, TOP_P, seed=7, sequence_ids=ids[lo:lo + batch], samples_per_context=S)
               for lo in range(0, len(ids), batch)]
        assert torch.equal(torch.cat([g[0] for g in got]), want[0])
        assert torch.equal(torch.cat([g[1] for g in got]), want[1])


def test_shared_prefix_past_the_model_context(model):
    """When the window outgrows max_context the sampler re-prefills every row: same tokens as per-row."""
    s1, s2, stamps = _contexts(3, 20, 12, seed=5)
    ids = np.arange(9)
    ci = torch.as_tensor(ids // 3)
    kw = dict(seed=1, sequence_ids=ids, max_context=25)
    got = sample_tokens(model, s1[ci], s2[ci], stamps[ci], 12, TOP_P, samples_per_context=3, **kw)
    want = sample_tokens(model, s1[ci], s2[ci], stamps[ci], 12, TOP_P, shared_prefix=False, **kw)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_shared_groups_slots_follow_the_sequence_id():
    context = torch.tensor([0, 0, 1, 1, 1, 0])
    group_context, group, place = shared_groups(context, np.array([4, 5, 6, 7, 8, 9]), 3)
    # blocks of 3 ids: {4, 5} (context 0) · {6, 7, 8} (context 1) · {9} (context 0, next block)
    assert place.tolist() == [1, 2, 0, 1, 2, 0]
    assert [group_context[g].item() for g in group] == [0, 0, 1, 1, 1, 0]
    assert group[0] == group[1] and group[2] == group[3] == group[4] and len(set(group.tolist())) == 3
    with pytest.raises(ValueError, match="distinct"):
        shared_groups(torch.tensor([0, 0]), np.array([3, 3]), 2)


def test_descending_order_is_the_stable_descending_sort():
    g = torch.Generator().manual_seed(0)
    for V in (1, 7, 1000, 1024):
        x = torch.randn(64, V, generator=g) * 3
        x[:, ::5] = x[:, :1].clone()  # ties
        x[0, :V // 2] = 0.0
        x[1, : V // 2] = -0.0
        x[2] = -x[2].abs()
        x[3, -1] = float("inf")
        want = torch.sort(x, dim=-1, descending=True, stable=True)[1]
        assert torch.equal(descending_order(x), want)


@torch.no_grad()
def test_tokenizer_decodes_a_shared_context_once_with_the_same_result():
    """decode_horizon runs a context shared by several rows once (KronosTokenizer.decode_continuations): the
    horizon equals decoding each row's whole window to float32 rounding, and every row gets the same bytes in
    any batch, shared with other rows or alone."""
    from kronos_synth.generate.sampler import decode_horizon
    from kronos_synth.model import KronosTokenizer

    torch.manual_seed(0)
    tok = KronosTokenizer(d_in=6, d_model=32, n_heads=4, ff_dim=64, n_enc_layers=2, n_dec_layers=3,
                          ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4,
                          beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4).eval()
    g = torch.Generator().manual_seed(3)
    C, S, L, H = 5, 3, 12, 7
    ctx = [torch.randint(0, 16, (C, L), generator=g).repeat_interleave(S, 0) for _ in range(2)]
    gen = [torch.randint(0, 16, (C * S, H), generator=g) for _ in range(2)]
    s1, s2 = torch.cat([ctx[0], gen[0]], 1), torch.cat([ctx[1], gen[1]], 1)
    got = decode_horizon(tok, s1, s2, H, rows=4, share_context=True)
    want = tok.decode((s1, s2), half=True)[:, -H:]
    assert got.shape == (C * S, H, 6)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[0], got[1])  # samples of one context keep their own horizons
    assert torch.equal(decode_horizon(tok, s1[4:11], s2[4:11], H, rows=3, share_context=True), got[4:11])
    # a window longer than max_context: the shared part is the kept context only
    torch.testing.assert_close(decode_horizon(tok, s1, s2, H, max_context=10, share_context=True),
                               tok.decode((s1[:, -10:], s2[:, -10:]), half=True)[:, -H:], atol=1e-5, rtol=1e-5)
    # a 2-bar horizon: one row alone gives the same bytes as in the whole batch (short chunks are padded)
    a1, a2 = s1[:, :L + 2], s2[:, :L + 2]
    short = decode_horizon(tok, a1, a2, 2, share_context=True)
    assert all(torch.equal(decode_horizon(tok, a1[i:i + 1], a2[i:i + 1], 2, share_context=True), short[i:i + 1])
               for i in range(C * S))
    # one row per context takes the same path: a row's bytes do not depend on whether its context is shared
    assert torch.equal(decode_horizon(tok, s1[::S], s2[::S], H, rows=4, share_context=True), got[::S])
    # without share_context (one sample per context): the whole window in one pass, as before
    assert torch.equal(decode_horizon(tok, s1, s2, H), tok.decode((s1, s2), half=True)[:, -H:])
