"""Kronos: decoder-only predictor over hierarchical (s1, s2) tokens, with a temporal embedding.

Input of bar t: fusion(emb_s1·sqrt(D), emb_s2·sqrt(D)) + time embedding of bar t; the logits
read at position t predict bar t+1. s1 comes from the main stack; s2 from the dependency layer
conditioned on the (sampled or true) s1 of that next bar.

Incremental decoding (inference; one token per step after a prefill):

    cache = model.init_cache(batch, context)
    logits, ctx = model.decode_s1_cached(s1, s2, stamp, cache)        # prefill the lookback
    loop: s1_next ~ logits[:, -1]
          s2_next ~ model.decode_s2_cached(ctx[:, -1], s1_next, cache)
          logits, ctx = model.decode_s1_cached(s1_next[:, None], s2_next[:, None], stamp_next, cache)
          (when cache.free == 0: cache.reset() and prefill the last `context` tokens — reference semantics)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import native
from .cache import KronosCache, SharedPrefixCache
from .configs import PREDICTOR_KEYS, PREDICTOR_OPTIONAL_KEYS
from .hub import CheckpointMixin
from .layers import DependencyAwareLayer, RMSNorm, TransformerBlock, rope_cos_sin


class HierarchicalEmbedding(nn.Module):
    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2 ** s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2 ** s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat([self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale], dim=-1))


class FixedEmbedding(nn.Module):
    """Frozen sinusoidal table (used when learn_te is false); stored as `emb.weight` like the reference."""

    def __init__(self, n: int, d_model: int) -> None:
        super().__init__()
        pos = torch.arange(n).float().unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model))
        w = torch.zeros(n, d_model)
        w[:, 0::2], w[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.emb = nn.Embedding(n, d_model)
        self.emb.weight = nn.Parameter(w, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x).detach()


class TemporalEmbedding(nn.Module):
    """Sum of tables for stamp columns (minute, hour, weekday Mon=0, day 1-31, month 1-12)."""

    SIZES = {"minute": 60, "hour": 24, "weekday": 7, "day": 32, "month": 13}

    def __init__(self, d_model: int, learn_te: bool) -> None:
        super().__init__()
        make = nn.Embedding if learn_te else FixedEmbedding
        for name, n in self.SIZES.items():
            setattr(self, f"{name}_embed", make(n, d_model))

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
        """stamp (B, T, 5) → (B, T, D)."""
        s = stamp.long()
        minute, hour, weekday, day, month = (s[..., i] for i in range(5))
        # summed in the reference's order so fp32 results match bit for bit
        return (self.hour_embed(hour) + self.weekday_embed(weekday) + self.day_embed(day)
                + self.month_embed(month) + self.minute_embed(minute))


class DualHead(nn.Module):
    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, 2 ** s1_bits)
        self.proj_s2 = nn.Linear(d_model, 2 ** s2_bits)


class Kronos(CheckpointMixin, nn.Module):
    """Checkpoint-compatible with the reference `Kronos` (same args, names, numbers), plus a KV cache."""

    CONFIG_KEYS = PREDICTOR_KEYS
    OPTIONAL_CONFIG_KEYS = PREDICTOR_OPTIONAL_KEYS
    KIND = "predictor"

    def __init__(self, s1_bits: int, s2_bits: int, n_layers: int, d_model: int, n_heads: int, ff_dim: int,
                 ffn_dropout_p: float, attn_dropout_p: float, resid_dropout_p: float, token_dropout_p: float,
                 learn_te: bool, regime_buckets: int = 0) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {n_heads} heads of even size")
        if d_model % 8:
            raise ValueError(f"d_model {d_model} must split into the s2 layer's 4 heads of even size")
        self._config = dict(s1_bits=s1_bits, s2_bits=s2_bits, n_layers=n_layers, d_model=d_model,
                            n_heads=n_heads, ff_dim=ff_dim, ffn_dropout_p=float(ffn_dropout_p),
                            attn_dropout_p=float(attn_dropout_p), resid_dropout_p=float(resid_dropout_p),
                            token_dropout_p=float(token_dropout_p), learn_te=bool(learn_te))
        if regime_buckets:  # absent from config.json when off: released checkpoints' configs stay exact
            self._config["regime_buckets"] = int(regime_buckets)
        self.regime_buckets = int(regime_buckets)
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.n_layers, self.d_model, self.n_heads = n_layers, d_model, n_heads
        self.head_dim = d_model // n_heads
        self.s1_vocab_size = 2 ** s1_bits

        self.token_drop = nn.Dropout(token_dropout_p)
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.transformer = nn.ModuleList([
            TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)
            for _ in range(n_layers)])
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model)
        self.head = DualHead(s1_bits, s2_bits, d_model)
        self.apply(self._init_weights)
        if regime_buckets:
            # volatility regime of the context (data/regime.py): bucket 0 = unknown. Zero at init, so a model
            # given the table starts as the model without it (warm starts from a trained predictor).
            self.regime_emb = nn.Embedding(regime_buckets + 1, d_model)
            nn.init.zeros_(self.regime_emb.weight)

    def _init_weights(self, m: nn.Module) -> None:
        # the reference's scheme: xavier-normal linears, N(0, 1/D) embeddings (the fixed table stays)
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding) and m.weight.requires_grad:
            nn.init.normal_(m.weight, mean=0.0, std=self.d_model ** -0.5)

    # --- full-window passes (training, and the reference's inference path) --------------------

    def _inputs(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor | None) -> torch.Tensor:
        x = self.embedding(s1_ids, s2_ids)  # (B, T, D)
        if stamp is not None:
            x = x + self.time_emb(stamp)  # columns 0-4
        if self.regime_buckets:
            if stamp is not None and stamp.shape[-1] > 5:
                x = x + self.regime_emb(stamp[..., 5].long().clamp(0, self.regime_buckets))
            else:
                x = x + self.regime_emb.weight[0]  # no regime given: "unknown"
        return self.token_drop(x)

    def _trunk(self, s1_ids, s2_ids, stamp) -> torch.Tensor:
        x = self._inputs(s1_ids, s2_ids, stamp)
        rope = rope_cos_sin(self.head_dim, 0, x.shape[1], x.device)
        for blk in self.transformer:
            x = blk(x, rope)
        return self.norm(x)  # (B, T, D) normalised hidden states ("context")

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor | None = None,
                use_teacher_forcing: bool = False, s1_targets: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass → (s1_logits (B, T, V1), s2_logits (B, T, V2)).

        The s2 head is conditioned on s1_targets (teacher forcing) or on an s1 sampled from the
        model's own s1 distribution (reference default; `generator` seeds it).
        """
        x = self._trunk(s1_ids, s2_ids, stamp)
        s1_logits = self.head.proj_s1(x)
        if use_teacher_forcing:
            if s1_targets is None:
                raise ValueError("use_teacher_forcing=True needs s1_targets")
            sibling_ids = s1_targets
        else:
            probs = F.softmax(s1_logits.detach().float(), dim=-1).view(-1, self.s1_vocab_size)
            sibling_ids = torch.multinomial(probs, 1, generator=generator).view(s1_ids.shape)
        s2_logits = self.head.proj_s2(self.dep_layer(x, self.embedding.emb_s1(sibling_ids)))
        return s1_logits, s2_logits

    def decode_s1(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor,
                  stamp: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole window, no cache → (s1_logits (B, T, V1), context (B, T, D))."""
        x = self._trunk(s1_ids, s2_ids, stamp)
        return self.head.proj_s1(x), x

    def decode_s2(self, context: torch.Tensor, s1_ids: torch.Tensor) -> torch.Tensor:
        """s2 logits given context (B, L, D) and s1 ids (B, T), T == L or 1 → (B, L, V2).

        With T == 1 (the reference's inference call) row -1 is the s2 prediction for the next bar.
        """
        return self.head.proj_s2(self.dep_layer(context, self.embedding.emb_s1(s1_ids)))

    # --- incremental decoding with a KV cache ---------------------------------------------------

    def init_cache(self, batch_size: int, max_len: int, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> KronosCache:
        """Preallocate K/V for `max_len` positions (normally the model context) of `batch_size` rows.

        Default dtype: bf16 under bf16 weights on a CPU with the compiled attention kernel (`native.py`,
        which streams a bf16 cache at close to memory speed: half the bytes of float32), else float32
        (PyTorch's CPU matrix-vector products are faster in float32 than in bf16). Uninitialised: a
        position is always written before it is read, and zeroing would be one more pass over GBs."""
        ref = self.embedding.fusion_proj.weight
        device = torch.device(device) if device is not None else ref.device
        if dtype is None:
            bf16 = ref.dtype == torch.bfloat16 and device.type == "cpu" and native.available()
            dtype = torch.bfloat16 if bf16 else torch.float32
        shape = (batch_size, self.n_heads, max_len, self.head_dim)
        n_dep = self.dep_layer.cross_attn.n_heads
        dep_shape = (batch_size, n_dep, max_len, self.d_model // n_dep)

        def z(s):
            if device.type == "cpu" and native.available():  # the layout the kernel streams fastest
                return native.position_major(*s, dtype=dtype, device=device)
            return torch.empty(s, device=device, dtype=dtype)

        return KronosCache([z(shape) for _ in range(self.n_layers)], [z(shape) for _ in range(self.n_layers)],
                           z(dep_shape), z(dep_shape), 0)

    def decode_s1_cached(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor | None,
                         cache: KronosCache | SharedPrefixCache, *,
                         last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Consume T_new ≥ 1 new tokens (B, T_new) at positions cache.length.., append their K/V
        to the cache → (s1_logits (B, T_new, V1), context (B, T_new, D)) for the new positions.
        A `SharedPrefixCache` takes one token per step (T_new = 1).

        last_only: logits and context of the last position only (B, 1, ·) — what sampling needs after
        a prefill; skips the (B, T_new, V1) logits tensor."""
        B, T = s1_ids.shape
        start, end = cache.length, cache.length + s1_ids.shape[1]
        if B != cache.batch_size:
            raise ValueError(f"batch of {B} rows for a cache of {cache.batch_size}")
        if end > cache.max_len:
            raise ValueError(f"cache holds {cache.max_len} positions, {end} needed: reset() and re-prefill")
        x = self._inputs(s1_ids, s2_ids, stamp)
        rope = rope_cos_sin(self.head_dim, start, T, x.device)
        for i, blk in enumerate(self.transformer):
            x = blk(x, rope, cache.layer(i), start)
        x = self.norm(x)
        cache.write_dep(*self.dep_layer.cross_attn.project_kv(x), start)
        cache.length = end
        if last_only:
            x = x[:, -1:]
        return self.head.proj_s1(x), x

    def decode_s2_cached(self, context_last: torch.Tensor, s1_ids: torch.Tensor,
                         cache: KronosCache | SharedPrefixCache) -> torch.Tensor:
        """s2 logits for the next bar: query emb_s1(s1) attends (no RoPE, no mask) to every cached
        normalised hidden state; residual is the last context row.

        context_last (B, D) or (B, 1, D); s1_ids (B,) or (B, 1) → (B, V2) or (B, 1, V2).
        """
        if cache.length == 0:
            raise ValueError("decode_s2_cached needs a prefilled cache (call decode_s1_cached first)")
        squeeze = s1_ids.dim() == 1
        ids = s1_ids.view(-1, 1)
        h = context_last.view(ids.shape[0], 1, -1)
        x2 = self.dep_layer.forward_cached(h, self.embedding.emb_s1(ids), cache.dep())
        logits = self.head.proj_s2(x2)  # (B, 1, V2)
        return logits[:, 0] if squeeze else logits
