"""The compiled decode-attention kernel (model/native.py): values, layouts, batch invariance, fallback."""

import shutil

import pytest
import torch

from kronos_synth.model import Kronos, native
from kronos_synth.model.layers import single_query_attention

needs_kernel = pytest.mark.skipif(not native.available(), reason="no C compiler")


def _attention64(q, k, v, n):
    """Reference in float64: softmax(q·kᵀ)·v over positions 0..n-1, q already scaled."""
    s = torch.einsum("bhk,bhjk->bhj", q.double(), k[:, :, :n].double())
    return torch.einsum("bhj,bhjk->bhk", s.softmax(-1), v[:, :, :n].double())


def _cache(B, H, C, K, dtype, layout, seed):
    g = torch.Generator().manual_seed(seed)
    k, v = (torch.randn(B, H, C, K, generator=g).to(dtype) for _ in range(2))
    if layout == "position-major":
        pk, pv = (native.position_major(B, H, C, K, dtype=dtype) for _ in range(2))
        pk.copy_(k), pv.copy_(v)
        return pk, pv
    return k, v


def _avx512() -> bool:
    try:
        return " avx512f" in open("/proc/cpuinfo").read()
    except OSError:
        return False


def test_build_works_where_a_compiler_and_avx512_exist():
    if shutil.which("cc") is None and shutil.which("gcc") is None or not _avx512():
        pytest.skip("no C compiler or no AVX-512 (PyTorch's path runs)")
    assert native.available()


@needs_kernel
@pytest.mark.parametrize("K", [64, 128, 48, 20])  # the two specialised widths, any multiple of 16, scalar
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["row-major", "position-major"])
def test_partial_attention_equals_softmax_attention(K, dtype, layout):
    B, H, C = 37, 3, 41  # 111 rows: a partial tile and a partial block of 16
    k, v = _cache(B, H, C, K, dtype, layout, seed=K)
    q = torch.randn(B, H, K, generator=torch.Generator().manual_seed(1)) * K ** -0.5
    # float32 caches: float32 products and sums. bf16 caches (on CPUs with AVX512-BF16): the query and the
    # attention weights are rounded to bf16 as in a bf16 matmul (sums stay float32), about 2^-8 relative.
    atol = 2e-6 if dtype == torch.float32 else 6e-3
    for n in (1, 16, 29, C):
        peak, total, o = native.partial_attention(q, k, v, n)
        want = _attention64(q, k.float(), v.float(), n)
        torch.testing.assert_close((o / total.unsqueeze(-1)).double(), want, atol=atol, rtol=1e-5)
        s = torch.einsum("bhk,bhjk->bhj", q.double(), k[:, :, :n].double())
        torch.testing.assert_close(peak.double(), s.amax(-1), atol=5 * atol, rtol=1e-5)
        torch.testing.assert_close(total.double().log() + peak.double(), s.logsumexp(-1), atol=5 * atol, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_rows_bytes_do_not_depend_on_batch_or_threads(dtype):
    B, H, C, K = 300, 2, 24, 64
    k, v = _cache(B, H, C, K, dtype, "position-major", seed=3)
    q = torch.randn(B, H, K, generator=torch.Generator().manual_seed(4))
    full = native.partial_attention(q, k, v, 19, threads=2)
    for lo, hi, threads in [(5, 9, 1), (17, 290, 3), (0, 300, 1), (131, 132, 2)]:
        kk, vv = k[lo:hi], v[lo:hi]
        for got, want in zip(native.partial_attention(q[lo:hi], kk, vv, 19, threads=threads), full, strict=True):
            assert torch.equal(got, want[lo:hi])


@needs_kernel
def test_single_query_attention_takes_the_kernel_and_agrees_with_torch(monkeypatch):
    B, H, L, K = 6, 4, 30, 64
    k, v = _cache(B, H, L, K, torch.float32, "row-major", seed=5)
    q = torch.randn(B, H, 1, K, generator=torch.Generator().manual_seed(6))
    got = single_query_attention(q, k, v)
    monkeypatch.setenv("KRONOS_SYNTH_NATIVE", "0")
    assert not native.available()
    want = single_query_attention(q, k, v)
    assert not torch.equal(got, want)  # another summation order: the kernel was used
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_without_the_kernel_caches_are_float32_and_row_major(monkeypatch):
    monkeypatch.setenv("KRONOS_SYNTH_NATIVE", "0")
    model = Kronos(s1_bits=4, s2_bits=4, n_layers=1, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0,
                   attn_dropout_p=0, resid_dropout_p=0, token_dropout_p=0, learn_te=True).to(torch.bfloat16)
    cache = model.init_cache(3, 10)
    assert cache.k[0].dtype == torch.float32 and cache.k[0].is_contiguous()
    with pytest.raises(RuntimeError, match="not available"):
        native.partial_attention(torch.zeros(3, 4, 8), cache.k[0], cache.v[0], 1)


@needs_kernel
def test_with_the_kernel_bf16_caches_are_position_major():
    model = Kronos(s1_bits=4, s2_bits=4, n_layers=1, d_model=32, n_heads=4, ff_dim=64, ffn_dropout_p=0,
                   attn_dropout_p=0, resid_dropout_p=0, token_dropout_p=0, learn_te=True).to(torch.bfloat16)
    cache = model.init_cache(3, 10)
    k = cache.k[0]
    assert k.dtype == torch.bfloat16 and k.shape == (3, 4, 10, 8)
    assert k.stride() == (4 * 8, 8, 3 * 4 * 8, 1)  # position j of every row is one block
    assert native.fits(torch.zeros(3, 4, 1, 8), k, cache.v[0])


def test_a_failed_build_falls_back_to_pytorch(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setenv("KRONOS_SYNTH_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_tried", False)
    assert native.library() is None and not native.available()
    assert not list(tmp_path.rglob("*.so"))  # nothing half-written left behind
    q, k = torch.zeros(1, 1, 1, 16), torch.zeros(1, 1, 4, 16)
    assert not native.fits(q, k, k)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rows_map_queries_onto_shared_cache_rows(dtype):
    """Samples over one shared prefix: query row b reads cache row rows[b], the same bytes as a private copy."""
    N, H, P, K = 4, 8, 33, 64
    k, v = _cache(N, H, P, K, dtype, "position-major", seed=7)
    rows = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 2])
    q = torch.randn(len(rows), H, K, generator=torch.Generator().manual_seed(8))
    got = native.partial_attention(q, k, v, P, rows=rows)
    copies = [native.position_major(len(rows), H, P, K, dtype=dtype) for _ in range(2)]
    copies[0].copy_(k[rows]), copies[1].copy_(v[rows])
    for a, b in zip(got, native.partial_attention(q, *copies, P), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="rows"):
        native.partial_attention(q, k, v, P, rows=rows + 1)


needs_packed = pytest.mark.skipif(not native.available() or not native.library().ks_packed_prefix(),
                                  reason="no compiled kernel with AVX512-BF16")


def test_pack_prefix_layout():
    N, H, P, K = 2, 3, 21, 64
    k, v = (torch.randn(N, H, P, K).to(torch.bfloat16) for _ in range(2))
    kt, vt = native.pack_prefix(k, v)
    assert kt.shape == (N, H, K // 2, 32, 2) and vt.shape == (N, H, 16, K, 2)  # 21 positions padded to 32
    assert torch.equal(kt[1, 2, 5, 20], k[1, 2, 20, 10:12]) and torch.equal(vt[0, 1, 9, 7], v[0, 1, 18:20, 7])
    assert not kt[:, :, :, P:].any() and not vt[:, :, P // 2 + 1:].any()  # the padding is zero


@needs_packed
@pytest.mark.parametrize("H, K", [(8, 64), (4, 128)])
def test_packed_prefix_attention_equals_softmax_attention_and_is_batch_invariant(H, K):
    """The shared prefix packed once (`pack_prefix`): samples of a context share its loads. Values as the bf16
    kernel's (bf16 query and weights, float32 sums) against float64; a row's bytes do not depend on the rows
    around it, the block it falls in or the thread count."""
    N, P = 5, 37
    g = torch.Generator().manual_seed(K)
    k, v = (torch.randn(N, H, P, K, generator=g).to(torch.bfloat16) for _ in range(2))
    rows = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 4, 4])  # groups of 1 to 8 (blocks split them)
    q = torch.randn(len(rows), H, K, generator=g) * K ** -0.5
    kt, vt = native.pack_prefix(k, v)
    for n in (1, 15, 16, 17, P):
        peak, total, o = native.prefix_attention(q, kt, vt, n, rows)
        s = torch.einsum("bhk,bhjk->bhj", q.double(), k[rows][:, :, :n].double())
        want = torch.einsum("bhj,bhjk->bhk", s.softmax(-1), v[rows][:, :, :n].double())
        torch.testing.assert_close((o / total.unsqueeze(-1)).double(), want, atol=6e-3, rtol=1e-5)
        torch.testing.assert_close(total.double().log() + peak.double(), s.logsumexp(-1), atol=3e-2, rtol=1e-5)
    full = native.prefix_attention(q, kt, vt, 30, rows, threads=2)
    for lo, hi, threads in [(0, 1, 1), (5, 9, 2), (6, 15, 3), (2, 13, 1)]:
        part = native.prefix_attention(q[lo:hi], kt, vt, 30, rows[lo:hi], threads=threads)
        for got, want in zip(part, full, strict=True):
            assert torch.equal(got, want[lo:hi])


@needs_packed
def test_bf16_sampling_over_a_packed_prefix_is_batch_invariant():
    """A bf16 model with 64-wide heads decodes its samples over the packed prefix; a sequence's tokens do not
    depend on the batch it is sampled in."""
    import numpy as np

    from kronos_synth.generate.sampler import SamplingConfig, sample_tokens
    from kronos_synth.model import SharedPrefixCache

    torch.manual_seed(0)
    model = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=128, n_heads=2, ff_dim=256, ffn_dropout_p=0,
                   attn_dropout_p=0, resid_dropout_p=0, token_dropout_p=0, learn_te=True).eval().to(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    C, L, horizon, S = 3, 24, 12, 4
    s1, s2 = (torch.randint(0, 64, (C, L), generator=g) for _ in range(2))
    stamps = torch.stack([torch.randint(0, n, (C, L + horizon), generator=g) for n in (60, 24, 7, 32, 13)], -1).float()
    ids = np.arange(C * S)
    ci = torch.as_tensor(ids // S)
    packed = []
    real = SharedPrefixCache.__init__

    def spy(self, *a, **kw):
        real(self, *a, **kw)
        packed.append(self.packed)
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95)
    steps = []
    rope_write = native.rope_write
    SharedPrefixCache.__init__ = spy
    native.rope_write = lambda *a: steps.append(1) or rope_write(*a)
    try:
        full = sample_tokens(model, s1[ci], s2[ci], stamps[ci], horizon, cfg, seed=3, sequence_ids=ids,
                             samples_per_context=S)
    finally:
        SharedPrefixCache.__init__ = real
        native.rope_write = rope_write
    assert packed and all(p is not None for p in packed[0][:-1])  # the main stack's 64-wide heads are packed
    assert len(steps) == 2 * (horizon - 1)  # every decode step of both layers took the fused path
    assert len(torch.unique(full[0])) > 5
    for lo, hi in ((0, 5), (5, 12), (2, 3)):
        part = sample_tokens(model, s1[ci[lo:hi]], s2[ci[lo:hi]], stamps[ci[lo:hi]], horizon, cfg, seed=3,
                             sequence_ids=ids[lo:hi], samples_per_context=S)
        assert torch.equal(part[0], full[0][lo:hi]) and torch.equal(part[1], full[1][lo:hi])


@needs_kernel
def test_reused_cache_buffers_give_the_same_tokens():
    """Batch after batch the caches take the last batch's storage (`native.reusing`): old bytes in it are never
    read, so the tokens equal fresh allocations', and the storage is the same memory."""
    import numpy as np

    from kronos_synth.generate.sampler import SamplingConfig, sample_tokens

    torch.manual_seed(0)
    model = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=128, n_heads=2, ff_dim=256, ffn_dropout_p=0,
                   attn_dropout_p=0, resid_dropout_p=0, token_dropout_p=0, learn_te=True).eval().to(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    C, L, horizon = 6, 20, 10
    s1, s2 = (torch.randint(0, 64, (C, L), generator=g) for _ in range(2))
    stamps = torch.stack([torch.randint(0, n, (C, L + horizon), generator=g) for n in (60, 24, 7, 32, 13)], -1).float()
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95)
    for spc in (1, 3):
        buffers: dict = {}
        for lo, hi in ((0, 3), (3, 6), (0, 6), (2, 5)):
            ids = np.arange(lo, hi)
            before = {key: {t.data_ptr() for t in found} for key, found in buffers.items()}
            got = sample_tokens(model, s1[lo:hi], s2[lo:hi], stamps[lo:hi], horizon, cfg, seed=5, sequence_ids=ids,
                                samples_per_context=spc, buffers=buffers)
            fresh = sample_tokens(model, s1[lo:hi], s2[lo:hi], stamps[lo:hi], horizon, cfg, seed=5,
                                  sequence_ids=ids, samples_per_context=spc)
            assert torch.equal(got[0], fresh[0]) and torch.equal(got[1], fresh[1])
            if (lo, hi) == (3, 6):  # the same shapes as the batch before: its storage again
                assert {key: {t.data_ptr() for t in found} for key, found in buffers.items()} == before


@needs_kernel
def test_bf16_rms_norm_in_one_pass_matches_pytorchs_arithmetic():
    """Inference under bf16 weights takes the one-pass norm; its float32 arithmetic is PyTorch's (normalise,
    round, times the weight, round) with the mean summed in another order: at most one bf16 step apart."""
    from kronos_synth.model.layers import RMSNorm

    g = torch.Generator().manual_seed(0)
    for dim in (16, 256, 512, 832):
        norm = RMSNorm(dim).to(torch.bfloat16)
        with torch.no_grad():
            norm.weight.copy_(torch.randn(dim, generator=g))
            x = (torch.randn(64, 3, dim, generator=g) * 3).to(torch.bfloat16)
            got = norm(x)
        xf = x.float()
        want = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)).type_as(x) * norm.weight.detach()
        assert got.dtype == torch.bfloat16 and got.shape == x.shape
        assert (got != want).float().mean() < 0.01
        torch.testing.assert_close(got.float(), want.float(), atol=0, rtol=2 ** -7)
