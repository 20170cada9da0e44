"""KV-cached batched autoregressive sampling of Kronos tokens.

The reference recomputes the whole window at every step and averages paths; here each step costs
one token per sequence (per-layer K/V caches, preallocated), every path is kept, and every draw comes
from the counter-based generator in `rng.py`, so a sequence's tokens depend only on
(weights, context, seed, sequence id) — never on the batch it was sampled in.

Sampling order: temperature, then top-k, then top-p (both filters when both are set; the reference
ignores top-p whenever top-k > 0). A draw is an inverse-CDF lookup of one uniform in the filtered
distribution sorted by probability, so top_k=1 is exactly greedy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kronos_synth.generate.rng import counter_uniform
from kronos_synth.model.cache import KronosCache

PREFILL_ROWS = 64  # rows per prefill chunk (see sample_tokens)


@dataclass(frozen=True)
class SamplingConfig:
    """How one token is drawn from the logits (defaults: `GenerationConfig`)."""

    temperature: float
    top_k: int  # 0 = off
    top_p: float

    def __post_init__(self) -> None:
        from kronos_synth.data.errors import InputError

        for name, ok, rule in (("temperature", self.temperature > 0, "> 0"),
                               ("top_k", self.top_k >= 0, "≥ 0 (0 = off)"),
                               ("top_p", 0 < self.top_p <= 1, "in (0, 1]")):
            if not ok:
                raise InputError(f"{name} must be {rule}, got {getattr(self, name)}", param=name)


def sample_from_logits(logits: torch.Tensor, uniforms: np.ndarray, cfg: SamplingConfig) -> torch.Tensor:
    """logits (B, V), uniforms (B,) in [0, 1) → token ids (B,) int64."""
    logits = logits.float() / cfg.temperature
    # Sorting once serves top-k, top-p and the inverse-CDF draw. Stable, so ties break by token id.
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits, dim=-1)  # (B, V) descending
    keep = torch.ones_like(probs, dtype=torch.bool)
    if cfg.top_k > 0:
        keep[:, cfg.top_k:] = False
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)
    if cfg.top_p < 1.0:
        # Keep the smallest prefix whose mass reaches top_p (the token that crosses it stays).
        before = torch.cumsum(probs, dim=-1) - probs
        keep &= before < cfg.top_p
        keep[:, 0] = True
        probs = probs * keep
    cdf = torch.cumsum(probs.double(), dim=-1)
    u = torch.from_numpy(uniforms).to(cdf.device).unsqueeze(-1) * cdf[:, -1:]
    pos = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)
    # Guard against landing on a zero-probability tail slot through rounding.
    n_kept = keep.sum(-1, keepdim=True) - 1
    pos = torch.minimum(pos, n_kept)
    return order.gather(-1, pos).squeeze(-1)


@torch.no_grad()
def sample_tokens(
    model: torch.nn.Module,
    s1_context: torch.Tensor,
    s2_context: torch.Tensor,
    stamps: torch.Tensor,
    horizon: int,
    cfg: SamplingConfig,
    *,
    seed: int,
    sequence_ids: np.ndarray,
    max_context: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue token contexts by `horizon` steps.

    s1_context, s2_context: (B, L) int64 ids; stamps: (B, L + horizon, 5) time features of context and
    future bars. Returns generated (s1, s2) ids, each (B, horizon). The draw for step i is
    `counter_uniform(seed, sequence_ids, i, stream)` with stream 0 for s1 and 1 for s2.
    """
    b, L = s1_context.shape
    if stamps.shape[:2] != (b, L + horizon):
        raise ValueError(f"stamps must be (B, L + horizon, 5) = {(b, L + horizon, 5)}, got {tuple(stamps.shape)}")
    device = s1_context.device
    s1_all = torch.cat([s1_context, s1_context.new_zeros(b, horizon)], dim=1)  # (B, L + H)
    s2_all = torch.cat([s2_context, s2_context.new_zeros(b, horizon)], dim=1)
    cache = model.init_cache(b, min(L + horizon, max_context), device=device)

    def feed(start: int, end: int, rows: slice | torch.Tensor = slice(None), part: KronosCache | None = None):
        logits, ctx = model.decode_s1_cached(s1_all[rows, start:end], s2_all[rows, start:end],
                                             stamps[rows, start:end], part or cache, last_only=True)
        return logits[:, -1], ctx  # (B, V1), (B, 1, D)

    def prefill(end: int, share: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        # (Re)fill the cache with the last `max_context` tokens before `end` (reference window semantics),
        # PREFILL_ROWS rows at a time: the per-layer activations of all rows at once would be hundreds of
        # MB per tensor, which the allocator maps and zeroes afresh for every op (most of the time went
        # to page faults). With `share`, rows with the same tokens and stamps (several samples of one
        # context, samples_per_context) are run once and their cache rows copied. Rows are independent,
        # so every row gets the result it would get alone.
        cache.reset()
        start = max(0, end - max_context)
        shared = distinct_rows(torch.cat([s1_all[:, start:end], s2_all[:, start:end],
                                          stamps[:, start:end].flatten(1).double().view(torch.int64)], 1)
                               ) if share else None
        rows = shared[0] if shared else torch.arange(b)
        target = model.init_cache(len(rows), cache.max_len, device=device, dtype=cache.dep_k.dtype) \
            if shared else cache
        out = [feed(start, end, rows[lo:hi], target.rows(lo, hi))
               for lo in range(0, len(rows), PREFILL_ROWS) for hi in [min(lo + PREFILL_ROWS, len(rows))]]
        logits, context = torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])
        if shared:
            inverse = shared[1]
            for dst, src in zip([*cache.k, *cache.v, cache.dep_k, cache.dep_v],
                                [*target.k, *target.v, target.dep_k, target.dep_v], strict=True):
                dst[:, :, :end - start] = src[inverse, :, :end - start]
            logits, context = logits[inverse], context[inverse]
        cache.length = end - start
        return logits, context

    s1_logits, context = prefill(L, share=True)
    for i in range(horizon):
        t = L + i  # position being generated
        s1 = sample_from_logits(s1_logits, counter_uniform(seed, sequence_ids, i, 0), cfg)
        s2_logits = model.decode_s2_cached(context, s1.unsqueeze(1), cache)
        s2 = sample_from_logits(s2_logits.reshape(b, -1), counter_uniform(seed, sequence_ids, i, 1), cfg)
        s1_all[:, t], s2_all[:, t] = s1, s2
        if i + 1 == horizon:
            break
        if cache.length < cache.max_len:
            s1_logits, context = feed(t, t + 1)
        else:
            s1_logits, context = prefill(t + 1)
    return s1_all[:, L:], s2_all[:, L:]


@torch.no_grad()
def encode_contexts(tokenizer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize normalised context windows (B, L, F) → (s1, s2) ids, each (B, L).

    Equal rows (several samples of one context) are encoded once; rows are independent, so each
    row gets the ids it would get alone."""
    shared = distinct_rows(x.reshape(len(x), -1))
    if shared is None:
        return tokenizer.encode(x, half=True)
    s1, s2 = tokenizer.encode(x[shared[0]], half=True)
    return s1[shared[1]], s2[shared[1]]


def distinct_rows(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For a (B, K) key: (index of the first row of each distinct key, each row's position among them),
    or None when every row is distinct — so equal rows can share one computation."""
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
    if len(uniq) == len(key):
        return None
    first = torch.full((len(uniq),), len(key), dtype=torch.long, device=key.device).scatter_reduce_(
        0, inverse, torch.arange(len(key), device=key.device), reduce="amin")
    return first, inverse


@torch.no_grad()
def decode_horizon(tokenizer: torch.nn.Module, s1: torch.Tensor, s2: torch.Tensor, horizon: int,
                   max_context: int = 512, rows: int = PREFILL_ROWS) -> torch.Tensor:
    """Decode context + generated ids (B, L + H) like the reference — the causal tokenizer decoder sees
    the last `max_context` tokens — and return the last `horizon` positions (B, H, F).

    In row chunks: the activations of all rows at once are hundreds of MB per op (see `prefill`)."""
    start = max(0, s1.shape[1] - max_context)
    parts = [tokenizer.decode((s1[lo:lo + rows, start:], s2[lo:lo + rows, start:]), half=True)[:, -horizon:]
             for lo in range(0, len(s1), rows)]
    return torch.cat(parts)
