"""Transformer pieces shared by the Kronos tokenizer and predictor.

Parameter and buffer names equal the reference release so state dicts load both ways.
Shapes: B batch, T (query) length, L key length, D d_model, H heads, K head_dim.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import native
from .cache import SharedKV

ROPE_BASE = 10000.0


class RMSNorm(nn.Module):
    """x / rms(x) * weight; the normalisation runs in float32 whatever the weight dtype (bf16 safe)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.bfloat16 and self.weight.dtype == torch.bfloat16 and x.device.type == "cpu"
                and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
                and native.available()):
            return native.rms_norm_bf16(x, self.weight, self.eps)  # inference in bf16: one pass, not five
        # x * rsqrt(mean(x²) + eps) in one fused op: the same bytes as the three-op formula on CPU (a test
        # checks), and about 3 fewer passes over the activations per norm at decode time
        return F.rms_norm(x.float(), (x.shape[-1],), None, self.eps).type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), no biases."""

    def __init__(self, d_model: int, ff_dim: int, ffn_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.ffn_dropout = nn.Dropout(ffn_dropout_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


def inv_freq(head_dim: int) -> torch.Tensor:
    """RoPE frequencies 1 / base^(2i/K), float32, (K/2,)."""
    return 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2).float() / head_dim))


def rope_cos_sin(head_dim: int, start: int, length: int, device: torch.device | str | None = None):
    """cos/sin tables for absolute positions start..start+length-1, float32, each (length, K).

    Computed from the formula rather than from the `inv_freq` buffer so a bf16 model keeps
    float32 angles (the buffer would be rounded by `model.to(torch.bfloat16)`).
    """
    t = torch.arange(start, start + length, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq(head_dim).to(device))  # (length, K/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # rotate-half layout: (length, K)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rotate (B, H, T, K) by tables (T, K) in float32, return in `dtype` (default: x's dtype)."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (xf * cos + rotated * sin).to(dtype or x.dtype)


class RotaryPositionalEmbedding(nn.Module):
    """Holds the reference's persistent `inv_freq` buffer (checkpoint compatibility); the
    angles themselves come from `rope_cos_sin`."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", inv_freq(head_dim))


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)  # (B, H, T, K)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    B, H, T, K = x.shape
    return x.transpose(1, 2).reshape(B, T, H * K)


def single_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           dropout_p: float = 0.0) -> torch.Tensor:
    """One query per row (B, H, 1, K) over L cached keys/values (B, H, L, K) → (B, H, 1, K) in q's dtype.

    Plain math in the cache's dtype, not SDPA: for a single query the CPU flash kernel splits the keys
    across threads, so its sums (and, once a token draw flips, whole sequences) would depend on the
    thread count; these matmuls split over rows and heads only, so a 1-thread Ray worker and a 2-thread
    local run write the same bytes. A float32 cache under a bf16 model is also ~2x faster here: this
    step is memory-bound and the CPU has no fast bf16 path for batched matrix-vector products.

    On CPU the compiled kernel (`native.py`) replaces the matmuls: it streams each row's keys and values
    once, in the cache's dtype (bf16 caches under a bf16 model), with float32 sums — per row, so also
    independent of the batch and the thread count."""
    if dropout_p == 0.0 and native.fits(q, k, v):
        part = native.partial_attention(q[:, :, 0].float() * q.shape[-1] ** -0.5, k, v, k.shape[2])
        return native.combine(*part, dtype=q.dtype).unsqueeze(2)
    # k @ qᵀ rather than q @ kᵀ: a matrix-vector product over the cache as stored (rows of keys) runs
    # ~40 % faster than one over its transpose on CPU.
    scores = (k @ q.to(k.dtype).transpose(-2, -1)).transpose(-2, -1)  # (B, H, 1, L)
    w = torch.softmax(scores * q.shape[-1] ** -0.5, dim=-1)
    return (F.dropout(w, p=dropout_p, training=dropout_p > 0) @ v).to(q.dtype)


def _partial_softmax(scores: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unnormalised attention over one part of the keys. scores (..., M, L) float32 for M queries over
    L keys (overwritten), v (..., L, K) → max m (..., M), l = Σ exp(s − m) (..., M) and
    o = Σ exp(s − m)·v (..., M, K), the product in v's dtype."""
    m = scores.amax(-1, keepdim=True)
    e = scores.sub_(m).exp_()
    return m[..., 0], e.sum(-1), e.to(v.dtype) @ v


def shared_prefix_attention(q: torch.Tensor, kv: SharedKV, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One query per row (B, H, 1, K) over its group's shared prefix and its own suffix → (B, H, 1, K)
    in dtype (float32 or bf16; the sums are float32 either way).

    Exact softmax attention over [prefix; suffix], as two partial softmaxes merged by their log-sum-exp
    (as flash attention merges blocks): each part keeps its max m, l = Σ exp(s − m) and o = Σ exp(s − m)·v,
    and out = (e^(m1−m)·o1 + e^(m2−m)·o2) / (e^(m1−m)·l1 + e^(m2−m)·l2) with m = max(m1, m2).
    The prefix part stacks the queries of a group into one (G, K) × (K, P) product per head, so a
    context's keys/values are read once for all of its samples rather than once per sample (the step is
    memory-bound). Its products run in the prefix's dtype (bf16 under a bf16 model: ~3x faster than
    float32 for these small stacked products on CPU), the suffix's in its own (float32: CPU bf16
    matrix-vector products are slower than float32 ones), exp, sums and the merge in float32.

    Batch invariance: a row always sits in the same slot of a same-shaped (G queries) product, no other
    slot enters its sums, and the suffix's capacity depends on the step only, so a row's result does not
    depend on the batch it is in.

    On CPU with the compiled kernel (`native.py`) both parts run there instead: a row reads its group's
    prefix through a row map, and the rows of a group, adjacent in a tile, find it in cache after the
    first; the kernel computes every row alone, so the same invariance holds."""
    B, H, _, K = q.shape
    N = kv.prefix_k.shape[0]
    q = q.float() * K ** -0.5
    if native.fits(q, kv.prefix_k, kv.prefix_v) and native.fits(q, kv.k, kv.v):
        return _shared_prefix_native(q[:, :, 0], kv, dtype).unsqueeze(2)
    qs = q.new_zeros((N, H, kv.group_size, K), dtype=kv.prefix_k.dtype)  # empty slots stay 0 (never read)
    qs[kv.group, :, kv.place] = q[:, :, 0].to(qs.dtype)
    m1, l1, o1 = _partial_softmax((qs @ kv.prefix_k.transpose(-2, -1)).float(), kv.prefix_v)  # (N, H, G[, K])
    m1, l1, o1 = m1[kv.group, :, kv.place], l1[kv.group, :, kv.place], o1[kv.group, :, kv.place].float()
    if kv.length == 0:  # nothing generated yet (the s2 step right after the prefill)
        return (o1 / l1.unsqueeze(-1)).unsqueeze(2).to(dtype)
    return _merge(m1, l1, o1, *_suffix_partial(q, kv)).to(dtype)


def _shared_prefix_native(q: torch.Tensor, kv: SharedKV, dtype: torch.dtype) -> torch.Tensor:
    """`shared_prefix_attention` in the compiled kernels: q (B, H, K) float32, scaled → (B, H, K) in dtype.
    The rows of a group sit next to each other and read their shared prefix from memory once, from cache
    after the first (packed for bf16 heads of 64/128: one load serves them all); every row computed alone, so
    the same invariance holds."""
    P = kv.prefix_k.shape[2]
    if kv.packed is not None:
        first = native.prefix_attention(q, *kv.packed, P, kv.group)
    else:
        first = native.partial_attention(q, kv.prefix_k, kv.prefix_v, P, rows=kv.group)
    if kv.length == 0:
        return native.combine(*first, dtype=dtype)
    return native.combine(*first, *native.partial_attention(q, kv.k, kv.v, kv.length), dtype=dtype)


def _merge(m1, l1, o1, m2, l2, o2) -> torch.Tensor:
    """Two partial softmaxes (max (B, H), Σ exp (B, H), Σ exp·v (B, H, K)) → attention (B, H, 1, K)."""
    m = torch.maximum(m1, m2)
    a1, a2 = torch.exp(m1 - m), torch.exp(m2 - m)
    out = torch.addcmul(a2.unsqueeze(-1) * o2, a1.unsqueeze(-1), o1)
    return out.div_((a1 * l1 + a2 * l2).unsqueeze(-1)).unsqueeze(2)


def _suffix_partial(q: torch.Tensor, kv: SharedKV) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The suffix's partial softmax in PyTorch: (m, l) (B, H) and o (B, H, K), float32."""
    # k @ qᵀ: a matrix-vector product over the suffix as stored (see single_query_attention), over all of
    # its dense capacity; the positions not written yet get no weight
    scores = (kv.k @ q.to(kv.k.dtype).transpose(-2, -1)).transpose(-2, -1).float()  # (B, H, 1, C)
    scores[..., kv.length:] = float("-inf")
    m2, l2, o2 = _partial_softmax(scores, kv.v)
    return m2[..., 0], l2[..., 0], o2[:, :, 0].float()  # (B, H[, K])


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int = 0,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """Attention of T queries at absolute positions start.. over L = start + T keys, causal."""
    T, L = q.shape[-2], k.shape[-2]
    if T == 1 and start > 0:  # one new token sees every cached key
        return single_query_attention(q, k, v, dropout_p)
    dtype = q.dtype
    q, k, v = q.to(k.dtype), k, v  # a float32 cache under a bf16 model: attend in float32
    if start == 0:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=T > 1).to(dtype)
    # T queries after `start` cached positions (a continuation over a shared prefix): bottom-right aligned
    # causal mask, in plain matmuls — SDPA with a mask gives a row different bytes in batches of
    # different sizes on CPU; batched matmuls compute each (row, head) alone.
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, T, L)
    future = torch.arange(L, device=q.device)[None, :] > torch.arange(start, L, device=q.device)[:, None]
    w = torch.softmax(scores.masked_fill_(future, float("-inf")), dim=-1)
    return (F.dropout(w, p=dropout_p, training=dropout_p > 0) @ v).to(dtype)


class MultiHeadAttentionWithRoPE(nn.Module):
    """Causal self-attention with biased projections and RoPE; optional K/V cache."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0,
                 resid_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryPositionalEmbedding(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: tuple[torch.Tensor, torch.Tensor] | SharedKV | None = None, start: int = 0) -> torch.Tensor:
        """x (B, T, D) at positions start..start+T-1 → (B, T, D).

        rope: (cos, sin) for those positions (computed here when None). cache: preallocated
        (k, v) each (B, H, max_len, K), or a `SharedKV` layer of a shared-prefix cache; the new
        keys/values are written at start..start+T-1 and the queries attend to everything up to there.
        """
        B, T, _ = x.shape
        if rope is None:
            rope = rope_cos_sin(self.head_dim, start, T, x.device)
        cos, sin = rope
        if T == 1 and start > 0 and cache is not None and not self.training:
            y = self._native_step(x, cos, sin, cache, start)
            if y is not None:
                return self.resid_dropout(self.out_proj(y.view(B, 1, -1)))
        if (T > 1 and start == 0 and isinstance(cache, tuple) and not self.training and x.device.type == "cpu"
                and native.available() and native.position_major_layout(cache[0])):
            # a prefill into the kernels' cache: RoPE and the cache writes in one pass, attention as below
            q, k, v = native.rope_prefill(self.q_proj(x), self.k_proj(x), self.v_proj(x), cos, sin,
                                          cache[0][:, :, :T], cache[1][:, :, :T])
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).to(x.dtype)
            return self.resid_dropout(self.out_proj(_merge_heads(y)))
        # Rotated q/k go straight to the attention dtype (the cache's: float32 under a bf16 model),
        # skipping a round trip through bf16.
        att_dtype = (cache.k if isinstance(cache, SharedKV) else cache[0]).dtype if cache is not None else x.dtype
        if att_dtype == torch.bfloat16 and cache is not None:  # a bf16 cache: queries stay float32
            att_dtype = torch.float32
        q = apply_rope(_split_heads(self.q_proj(x), self.n_heads), cos, sin, att_dtype)
        k = apply_rope(_split_heads(self.k_proj(x), self.n_heads), cos, sin, att_dtype)
        v = _split_heads(self.v_proj(x), self.n_heads)
        if isinstance(cache, SharedKV):  # a decode step over a shared prefix (cache.py): write, then attend
            s = cache.length
            if T != 1 or start != cache.prefix_k.shape[2] + s or self.training:
                raise ValueError("a shared-prefix cache takes one generated token per step, in eval mode")
            cache.k[:, :, s], cache.v[:, :, s] = k[:, :, 0], v[:, :, 0]
            y = shared_prefix_attention(q, cache._replace(length=s + 1))
            return self.resid_dropout(self.out_proj(_merge_heads(y.to(x.dtype))))
        if cache is not None:
            k_cache, v_cache = cache
            k_cache[:, :, start:start + T] = k
            v_cache[:, :, start:start + T] = v
            if start > 0:
                k, v = k_cache[:, :, :start + T], v_cache[:, :, :start + T]
            else:  # a prefill attends to its own keys as computed (float32 even when the cache is bf16)
                v = v.to(k.dtype)
        elif start != 0:
            raise ValueError("start > 0 needs a cache holding the earlier keys")
        dropout_p = self.attn_dropout_p if self.training else 0.0
        y = causal_attention(q, k, v, start, dropout_p).to(x.dtype)  # (B, H, T, K)
        return self.resid_dropout(self.out_proj(_merge_heads(y)))

    def _native_step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     cache: tuple[torch.Tensor, torch.Tensor] | SharedKV, start: int) -> torch.Tensor | None:
        """A decode step (one token at `start`) in the compiled kernels: RoPE, the scaled query and the cache
        writes in one pass, attention, and the merge into x's dtype in another → (B, H, K), or None where they
        do not apply (no kernels, another device or cache layout: PyTorch's path runs)."""
        if not native.available() or x.device.type != "cpu":
            return None
        if isinstance(cache, SharedKV):
            s = cache.length
            if start != cache.prefix_k.shape[2] + s:
                raise ValueError("a shared-prefix cache takes one generated token per step, in eval mode")
            k_cache, v_cache = cache.k, cache.v
            probe = cache.prefix_k, cache.prefix_v
        else:
            k_cache, v_cache = cache
            s, probe = start, cache
        kc, vc = k_cache[:, :, s], v_cache[:, :, s]
        # (fits reads only the query's device from its first argument: x's)
        if not (native.fits(x, k_cache, v_cache) and native.fits(x, *probe) and native.row_view(kc)):
            return None
        q = native.rope_write(self.q_proj(x), self.k_proj(x), self.v_proj(x), cos[0], sin[0], self.head_dim ** -0.5,
                              kc, vc)
        if isinstance(cache, SharedKV):
            return _shared_prefix_native(q, cache._replace(length=s + 1), x.dtype)
        return native.combine(*native.partial_attention(q, k_cache, v_cache, start + 1), dtype=x.dtype)


class TransformerBlock(nn.Module):
    """Pre-norm block: x += attn(norm1(x)); x += ffn(norm2(x))."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int = 1024, ffn_dropout_p: float = 0.0,
                 attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = MultiHeadAttentionWithRoPE(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, x: torch.Tensor, rope=None, cache=None, start: int = 0) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), rope, cache, start)
        return x + self.ffn(self.norm2(x))


class MultiHeadCrossAttentionWithRoPE(nn.Module):
    """The s2 layer's attention: query from the s1 embedding, keys/values from hidden states.

    Reference semantics, reproduced on purpose: RoPE tables are sized by the *query* length,
    so a one-token query (inference) gets no rotation at all and attends to the whole window;
    a full-length query gets positions 0..T-1. The mask is causal only in training mode.
    """

    def __init__(self, d_model: int, n_heads: int = 4, attn_dropout_p: float = 0.0,
                 resid_dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryPositionalEmbedding(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout)

    def project_kv(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, D) → k, v each (B, H, L, K), unrotated (what the inference path caches)."""
        return _split_heads(self.k_proj(hidden), self.n_heads), _split_heads(self.v_proj(hidden), self.n_heads)

    def attend(self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               causal: bool | None = None) -> torch.Tensor:
        """query (B, T, D) over given k, v (B, H, L, K) → (B, T, D); causal defaults to training."""
        q = _split_heads(self.q_proj(query), self.n_heads)
        T = q.shape[-2]
        if T > 1:  # positions 0..T-1 for queries and keys alike (needs L == T, as in the reference)
            if k.shape[-2] != T:
                raise ValueError(f"s2 layer: a {T}-token query needs {T} keys, got {k.shape[-2]}")
            cos, sin = rope_cos_sin(self.head_dim, 0, T, q.device)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        dropout_p = self.attn_dropout_p if self.training else 0.0
        causal = self.training if causal is None else causal
        if T == 1 and not causal:  # the inference step over cached k, v
            y = single_query_attention(q, k, v, dropout_p)
        else:
            y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), dropout_p=dropout_p, is_causal=causal)
        return self.resid_dropout(self.out_proj(_merge_heads(y)))

    def attend_shared(self, query: torch.Tensor, kv: SharedKV) -> torch.Tensor:
        """The inference step over a shared-prefix cache: query (B, 1, D) → (B, 1, D)."""
        q = _split_heads(self.q_proj(query), self.n_heads)
        y = shared_prefix_attention(q.to(kv.k.dtype), kv, query.dtype)
        return self.resid_dropout(self.out_proj(_merge_heads(y)))

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        k, v = _split_heads(self.k_proj(key), self.n_heads), _split_heads(self.v_proj(value), self.n_heads)
        return self.attend(query, k, v)


class DependencyAwareLayer(nn.Module):
    """s2 conditioning: norm(hidden + cross_attn(query=s1 embedding, kv=hidden)). Always 4 heads."""

    def __init__(self, d_model: int, n_heads: int = 4, attn_dropout_p: float = 0.0,
                 resid_dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = MultiHeadCrossAttentionWithRoPE(d_model, n_heads, attn_dropout_p, resid_dropout)
        self.norm = RMSNorm(d_model)

    def forward(self, hidden: torch.Tensor, sibling: torch.Tensor) -> torch.Tensor:
        """hidden (B, L, D), sibling (B, T, D) with T == L or T == 1 (then broadcast over L,
        as the reference does; its last row is the inference output)."""
        return self.norm(hidden + self.cross_attn(sibling, hidden, hidden))

    def forward_cached(self, hidden_last: torch.Tensor, sibling: torch.Tensor,
                       kv: tuple[torch.Tensor, torch.Tensor] | SharedKV) -> torch.Tensor:
        """Inference step: hidden_last (B, 1, D), sibling (B, 1, D), the cached unrotated k, v of all
        hidden states in the window — (B, H, L, K) each, or a shared-prefix `SharedKV` → (B, 1, D)."""
        if isinstance(kv, SharedKV):
            return self.norm(hidden_last + self.cross_attn.attend_shared(sibling, kv))
        return self.norm(hidden_last + self.cross_attn.attend(sibling, *kv, causal=False))
