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


def test_build_works_where_a_compiler_exists():
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    assert native.available()


@needs_kernel
@pytest.mark.parametrize("K", [64, 128, 48, 20])  # the two specialised widths, any multiple of 16, scalar
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["row-major", "position-major"])
def test_partial_attention_equals_softmax_attention(K, dtype, layout):
    B, H, C = 37, 3, 41  # 111 rows: a partial tile and a partial block of 16
    k, v = _cache(B, H, C, K, dtype, layout, seed=K)
    q = torch.randn(B, H, K, generator=torch.Generator().manual_seed(1)) * K ** -0.5
    for n in (1, 16, 29, C):
        peak, total, o = native.partial_attention(q, k, v, n)
        want = _attention64(q, k.float(), v.float(), n)
        torch.testing.assert_close((o / total.unsqueeze(-1)).double(), want, atol=2e-6, rtol=1e-5)
        s = torch.einsum("bhk,bhjk->bhj", q.double(), k[:, :, :n].double())
        torch.testing.assert_close(peak.double(), s.amax(-1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(total.double(), (s - s.amax(-1, keepdim=True)).exp().sum(-1), atol=1e-5, rtol=1e-5)


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
