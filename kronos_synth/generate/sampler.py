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

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from kronos_synth.generate.rng import counter_uniform
from kronos_synth.model import native
from kronos_synth.model.cache import KronosCache, SharedPrefixCache
from kronos_synth.model.tokenizer import MIN_GEMM_ROWS

PREFILL_ROWS = 64  # rows per prefill chunk (see sample_tokens)
# Tokenizer work (encode and decode) runs in chunks of windows whose activations (≈ 512 KB per layer
# tensor) stay in the CPU caches: for Kronos-Tokenizer-base, 512 windows at once ran 1.9x (encode) and
# 1.2-1.5x (decode) slower than chunks of 8-16, with the same bytes; the small embedded tokenizer is
# fastest at 32-64 windows of 30-64 bars.
TOKENIZER_CHUNK_BYTES = 1 << 19


def tokenizer_rows(tokenizer: torch.nn.Module, length: int) -> int:
    """Windows of `length` bars per tokenizer chunk (8 to 512)."""
    return max(8, min(512, TOKENIZER_CHUNK_BYTES // max(1, length * int(tokenizer.d_model) * 4)))
MAX_GROUP = 64  # at most this many samples of a context share one copy of its K/V (see shared_groups)


@dataclass(frozen=True)
class SamplingConfig:
    """How one token is drawn from the logits (defaults: `GenerationConfig`)."""

    temperature: float
    top_k: int  # 0 = off
    top_p: float
    temperature_spread: float = 0.0  # σ of each path's log-temperature (see path_temperatures); 0 = one temperature

    def __post_init__(self) -> None:
        from kronos_synth.data.errors import InputError

        for name, ok, rule in (("temperature", self.temperature > 0, "> 0"),
                               ("top_k", self.top_k >= 0, "≥ 0 (0 = off)"),
                               ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
                               ("temperature_spread", 0 <= self.temperature_spread <= 2, "in [0, 2]")):
            if not ok:
                raise InputError(f"{name} must be {rule}, got {getattr(self, name)}", param=name)


def sample_from_logits(logits: torch.Tensor, uniforms: np.ndarray, cfg: SamplingConfig,
                       order_by: torch.Tensor | None = None, bins: torch.Tensor | None = None,
                       inner_uniforms: np.ndarray | None = None) -> torch.Tensor:
    """logits (B, V), uniforms (B,) in [0, 1) → token ids (B,) int64.

    `order_by` (V,): the inverse-CDF draw walks the kept tokens in ascending order of this score
    instead of by probability. The kept set and the probabilities are the same, so each draw has the
    same distribution; what changes is which token a given uniform picks — with a score monotone in the
    token's return, a larger uniform means a higher return, which is what lets coupled uniforms couple
    returns (panels, `generate/panel.py`).

    `bins` (V,) int64 in [0, K), with `inner_uniforms` (B,): a draw in two stages that carries two coupled
    quantities. `uniforms` picks a bin (ascending bin id) with the bin's kept mass, then `inner_uniforms`
    picks a token inside it in the order of `order_by`. P(token) = P(bin) · P(token | bin): the same
    distribution again.

    On CPU with the compiled kernels (`model/native.py`) the same rule runs there, all rows in one call
    over the threads (PyTorch's path below sorts on one core and runs softmax, cumsums and the search as
    separate passes: ~4x slower); its softmax rounds differently, so a seed's bytes hold per path."""
    if order_by is None and logits.device.type == "cpu" and native.available():
        return native.sample(logits, uniforms, cfg.temperature, cfg.top_k, cfg.top_p)
    logits = logits.float() / cfg.temperature
    # Sorting once serves top-k, top-p and the inverse-CDF draw. Stable, so ties break by token id.
    order = descending_order(logits)
    probs = torch.softmax(logits.gather(-1, order), dim=-1)  # (B, V) descending
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
    if order_by is not None:
        # Kept tokens by ascending score (dropped ones last, stable ties): same mass, another order.
        score = torch.where(keep, order_by.to(probs.device).float()[order], torch.inf)
        by_score = torch.sort(score, dim=-1, stable=True)[1]
        order, probs, keep = order.gather(-1, by_score), probs.gather(-1, by_score), keep.gather(-1, by_score)
    if bins is not None:
        return _two_stage_draw(order, probs, keep, bins, uniforms, inner_uniforms)
    cdf = torch.cumsum(probs.double(), dim=-1)
    u = torch.from_numpy(uniforms).to(cdf.device).unsqueeze(-1) * cdf[:, -1:]
    pos = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)
    # Guard against landing on a zero-probability tail slot through rounding.
    n_kept = keep.sum(-1, keepdim=True) - 1
    pos = torch.minimum(pos, n_kept)
    return order.gather(-1, pos).squeeze(-1)


def _two_stage_draw(order: torch.Tensor, probs: torch.Tensor, keep: torch.Tensor, bins: torch.Tensor,
                    uniforms: np.ndarray, inner_uniforms: np.ndarray | None) -> torch.Tensor:
    """`sample_from_logits`' bin-then-token draw. order, probs, keep (B, V): the kept tokens ascending by
    score (dropped last, probability 0). A stable sort by bin makes each bin a contiguous run
    (kept tokens of a bin still by score), so bin b covers cdf positions [e_{b−1}, e_b)."""
    if inner_uniforms is None:
        raise ValueError("bins need inner_uniforms (the draw inside the bin)")
    k = int(bins.max()) + 1
    b_of = torch.where(keep, bins.to(order.device)[order], k)  # dropped tokens after every bin
    by_bin = torch.sort(b_of, dim=-1, stable=True)[1]
    order, keep, b_of = order.gather(-1, by_bin), keep.gather(-1, by_bin), b_of.gather(-1, by_bin)
    probs = probs.double().gather(-1, by_bin)
    cdf0 = torch.cat([torch.zeros_like(probs[:, :1]), torch.cumsum(probs, dim=-1)], -1)  # (B, V + 1)
    counts = torch.zeros(b_of.shape[0], k + 1, dtype=torch.int64, device=order.device)
    counts.scatter_add_(1, b_of, torch.ones_like(b_of))
    ends = torch.cumsum(counts[:, :k], dim=-1)  # (B, K): one past each bin's last position
    starts = ends - counts[:, :k]
    mass_end, mass_start = cdf0.gather(-1, ends), cdf0.gather(-1, starts)
    total = cdf0.gather(-1, ends[:, -1:])
    u1 = torch.from_numpy(uniforms).to(probs.device).unsqueeze(-1) * total
    b = torch.searchsorted(mass_end.contiguous(), u1, right=True)  # the first bin ending above u1: never empty
    last = (torch.arange(k, device=b.device) * (counts[:, :k] > 0)).amax(-1, keepdim=True)
    b = torch.minimum(b, last)  # u1 rounded up to the total: the last bin that has a kept token
    lo, hi = mass_start.gather(-1, b), mass_end.gather(-1, b)
    u2 = lo + torch.from_numpy(inner_uniforms).to(probs.device).unsqueeze(-1) * (hi - lo)
    pos = torch.searchsorted(cdf0[:, 1:].contiguous(), u2, right=True)
    # Rounding must not carry the draw out of its bin (or onto a dropped slot).
    pos = torch.maximum(torch.minimum(pos, ends.gather(-1, b) - 1), starts.gather(-1, b))
    return order.gather(-1, pos).squeeze(-1)


PATH_STEP, PATH_STREAM = 0xFFFE, 4  # the counter of each path's temperature draw (panels use streams 0-3)
SCALE_STREAM = 5  # the counter stream of each path's volatility scale (path_volatility_scales)
INNER_STREAM = 6  # the counter stream of the s1 draw inside its bin (TokenOrder.s1_bins; panels: + 8)


class TokenOrder(NamedTuple):
    """The inverse-CDF order of each draw (`sample_from_logits`): s1 (V1,) and s2 (V2,) scores, and optionally
    s1_bins (V1,): s1 is then drawn bin first (stream 0), then inside the bin in the order of `s1` (stream
    INNER_STREAM) — two quantities a coupled panel can carry per step (`generate/panel.py`)."""

    s1: torch.Tensor | None
    s2: torch.Tensor | None
    s1_bins: torch.Tensor | None = None


def path_temperatures(cfg: SamplingConfig, seed: int, path_ids: np.ndarray) -> np.ndarray | None:
    """Each path's temperature, cfg.temperature · exp(σz − σ²/2) with z ~ N(0, 1) drawn from the path's id,
    or None when σ = `temperature_spread` is 0.

    Why: a path's volatility over the horizon varies far less across Kronos's samples than across real
    continuations of similar contexts (the realised-volatility intervals are too narrow while the return
    intervals are right: docs/models.md). A temperature scales the spread of each step's distribution, so a
    temperature drawn once per path is a path-level volatility factor; its mean stays cfg.temperature, so
    the spread of one step's distribution is kept on average while the paths' volatility varies more.
    """
    if cfg.temperature_spread == 0:
        return None
    s = cfg.temperature_spread
    return cfg.temperature * np.exp(s * path_normals(seed, path_ids, PATH_STREAM) - s * s / 2)


def path_volatility_scales(spread: float, seed: int, path_ids: np.ndarray) -> np.ndarray | None:
    """Each path's volatility scale exp(σz − σ²) with z ~ N(0, 1) drawn from the path's id (E[scale²] = 1: the
    pooled return variance is kept), or None when σ = `spread` is 0. The generator multiplies the path's
    price moves (gaps, bodies, wicks) by it: the same shape at another volatility level."""
    if spread == 0:
        return None
    return np.exp(spread * path_normals(seed, path_ids, SCALE_STREAM) - spread * spread)


def path_normals(seed: int, path_ids: np.ndarray, stream: int) -> np.ndarray:
    """One standard normal per path id from its counter (step PATH_STEP, `stream`)."""
    from scipy.special import ndtri

    return ndtri(counter_uniform(seed, path_ids, PATH_STEP, stream) + 2.0 ** -54)  # draws are k / 2^53: off 0


def descending_order(x: torch.Tensor) -> torch.Tensor:
    """Indices that sort each row of float32 x (B, V) by descending value, ties by ascending index — what
    `torch.sort(x, descending=True, stable=True)` returns, ~10x faster on CPU: one unique integer key per
    entry (value bits made order-preserving, then the index) sorted by numpy's vectorized sort."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return torch.sort(x, dim=-1, descending=True, stable=True)[1]
    bits = max(1, (x.shape[-1] - 1).bit_length())
    i = (x.detach() + 0.0).contiguous().numpy().view(np.int32)  # + 0.0: -0.0 and 0.0 are equal values, one key
    desc = i ^ (~(i >> 31) & np.int32(0x7FFFFFFF))  # as uint32: ascending order = descending float order
    key = desc.view(np.uint32).astype(np.uint64) << np.uint64(bits)
    key |= np.arange(x.shape[-1], dtype=np.uint64)
    key.sort(axis=-1)
    key &= np.uint64((1 << bits) - 1)
    return torch.from_numpy(key.view(np.int64))


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
    samples_per_context: int = 1,
    shared_prefix: bool = True,
    uniforms: Callable[[int, int], np.ndarray] | None = None,
    token_scores: TokenOrder | None = None,
    buffers: dict | None = None,
    path_ids: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue token contexts by `horizon` steps.

    s1_context, s2_context: (B, L) int64 ids; stamps: (B, L + horizon, 5) time features of context and
    future bars. Returns generated (s1, s2) ids, each (B, horizon). The draw for step i is
    `counter_uniform(seed, sequence_ids, i, stream)` with stream 0 for s1 and 1 for s2.

    samples_per_context S: sequence ids k·S … k·S + S − 1 continue one context (the generator's order).
    With S > 1 (and `shared_prefix`) the rows of a context keep one copy of its K/V per group of
    samples (`SharedPrefixCache`, groups from `shared_groups`), so a decode step reads the context once
    for all of them; the result equals the per-row cache's (`shared_prefix=False`) to float32 rounding
    and, like it, does not depend on the batch a sequence is sampled in.

    `uniforms(step, stream)` → (B,) replaces the counter draws (coupled panels); it must itself depend
    only on the rows' ids. `token_scores`: the inverse-CDF order of each draw (`TokenOrder`;
    `sample_from_logits`' `order_by` and `bins`). `buffers`: a dict kept by the caller across calls, from which
    the K/V caches take their storage (`native.reusing`; none of it is read before it is written).
    `path_ids` (B,): the ids whose draws set each row's temperature when `cfg.temperature_spread` > 0
    (`path_temperatures`; default `sequence_ids`; a panel gives its assets one id, so one factor).
    """
    with native.reusing(buffers):
        return _sample_tokens(model, s1_context, s2_context, stamps, horizon, cfg, seed=seed, sequence_ids=sequence_ids,
                              max_context=max_context, samples_per_context=samples_per_context,
                              shared_prefix=shared_prefix, uniforms=uniforms, token_scores=token_scores,
                              path_ids=sequence_ids if path_ids is None else path_ids)


def _sample_tokens(model, s1_context, s2_context, stamps, horizon, cfg, *, seed, sequence_ids, max_context,
                   samples_per_context, shared_prefix, uniforms, token_scores,
                   path_ids) -> tuple[torch.Tensor, torch.Tensor]:
    temps = path_temperatures(cfg, seed, path_ids)
    if temps is not None:  # each row's logits divided by its own temperature, then drawn at temperature 1
        per_row = torch.from_numpy(temps).to(device=s1_context.device, dtype=torch.float32).unsqueeze(-1)
        cfg = replace(cfg, temperature=1.0, temperature_spread=0.0)
    if uniforms is None:
        def uniforms(step: int, stream: int) -> np.ndarray:
            return counter_uniform(seed, sequence_ids, step, stream)
    order1, order2, bins1 = token_scores if token_scores is not None else (None, None, None)
    b, L = s1_context.shape
    if stamps.shape[:2] != (b, L + horizon):
        raise ValueError(f"stamps must be (B, L + horizon, 5) = {(b, L + horizon, 5)}, got {tuple(stamps.shape)}")
    device = s1_context.device
    s1_all = torch.cat([s1_context, s1_context.new_zeros(b, horizon)], dim=1)  # (B, L + H)
    s2_all = torch.cat([s2_context, s2_context.new_zeros(b, horizon)], dim=1)
    window = min(L + horizon, max_context)

    def feed(cache, start: int, end: int, rows: slice | torch.Tensor = slice(None)):
        logits, ctx = model.decode_s1_cached(s1_all[rows, start:end], s2_all[rows, start:end],
                                             stamps[rows, start:end], cache, last_only=True)
        return logits[:, -1], ctx  # (B, V1), (B, 1, D)

    def prefill(cache: KronosCache, end: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Fill cache rows 0.. with the last `max_context` tokens before `end` of batch rows `rows`
        # (reference window semantics), PREFILL_ROWS rows at a time: the per-layer activations of all rows
        # at once would be hundreds of MB per tensor, which the allocator maps and zeroes afresh for every
        # op (most of the time went to page faults). Rows are independent: each gets its alone-result.
        cache.reset()
        start = max(0, end - max_context)
        out = [feed(cache.rows(lo, hi), start, end, rows[lo:hi])
               for lo in range(0, len(rows), PREFILL_ROWS) for hi in [min(lo + PREFILL_ROWS, len(rows))]]
        cache.length = end - start
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    # The context: rows with the same tokens and stamps (samples of one context) are prefilled once.
    start = max(0, L - max_context)
    shared = distinct_rows(torch.cat([s1_all[:, start:L], s2_all[:, start:L],
                                      stamps[:, start:L].flatten(1).double().view(torch.int64)], 1))
    first, inverse = shared or (torch.arange(b, device=device),) * 2
    group_size = min(samples_per_context, MAX_GROUP) if shared_prefix else 1
    cache: KronosCache | SharedPrefixCache
    if group_size == 1 and shared is None:
        cache = model.init_cache(b, window, device=device)
        s1_logits, context = prefill(cache, L, first)
    else:
        per_context = model.init_cache(len(first), L - start, device=device)
        s1_logits, context = prefill(per_context, L, first)
        s1_logits, context = s1_logits[inverse], context[inverse]
        if group_size == 1:  # every row its own copy of its context
            cache = model.init_cache(b, window, device=device, dtype=per_context.dep_k.dtype)
            for dst, src in zip([*cache.k, *cache.v, cache.dep_k, cache.dep_v],
                                [*per_context.k, *per_context.v, per_context.dep_k, per_context.dep_v], strict=True):
                dst[:, :, :L - start] = src[inverse]
            cache.length = L - start
        else:
            group_context, group, place = shared_groups(inverse, sequence_ids, group_size)
            # The stacked prefix products run ~3x faster in bf16 than in fp32 on CPU; the per-row suffix
            # takes the per-context cache's dtype (bf16 with the compiled kernel, else float32: PyTorch's
            # bf16 matrix-vector products are slower there): see docs/performance.md.
            weights = next(model.parameters()).dtype
            cache = SharedPrefixCache.from_prefix(per_context, group_context, group, place, group_size,
                                                  window - (L - start), prefix_dtype=weights)
        del per_context  # copied into the cache; not kept through decoding

    for i in range(horizon):
        t = L + i  # position being generated
        if temps is not None:
            s1_logits = s1_logits.float() / per_row
        s1 = sample_from_logits(s1_logits, uniforms(i, 0), cfg, order1, bins1,
                                None if bins1 is None else uniforms(i, INNER_STREAM))
        s2_logits = model.decode_s2_cached(context, s1.unsqueeze(1), cache).reshape(b, -1)
        if temps is not None:
            s2_logits = s2_logits.float() / per_row
        s2 = sample_from_logits(s2_logits, uniforms(i, 1), cfg, order2)
        s1_all[:, t], s2_all[:, t] = s1, s2
        if i + 1 == horizon:
            break
        if cache.free:
            s1_logits, context = feed(cache, t, t + 1)
        else:  # the window is full: recompute the last max_context tokens of every row (reference semantics)
            if not isinstance(cache, KronosCache):
                cache = model.init_cache(b, max_context, device=device)
            s1_logits, context = prefill(cache, t + 1, torch.arange(b, device=device))
    return s1_all[:, L:], s2_all[:, L:]


def shared_groups(context_of_row: torch.Tensor, sequence_ids: np.ndarray,
                  group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which rows share one copy of a context's K/V: those of one context whose sequence ids fall in one
    block [k·G, (k+1)·G), G = group_size (the generator gives the samples of a context consecutive ids).

    A row's slot in its group is its id mod G — fixed by the row alone, so its query takes the same place
    in a same-shaped product whatever else is in the batch, and float32 products (whose rounding depends
    on their shape) give it the same bytes at any batch size.
    → (context of each group (N,), group of each row (B,), slot of each row (B,))."""
    ids = torch.as_tensor(np.asarray(sequence_ids, dtype=np.int64), device=context_of_row.device)
    block = torch.div(ids, group_size, rounding_mode="floor")
    uniq, group = torch.unique(torch.stack([context_of_row, block], 1), dim=0, return_inverse=True)
    place = ids - block * group_size
    if len(torch.unique(group * group_size + place)) < len(ids):
        raise ValueError("sequence ids must be distinct within a batch")
    return uniq[:, 0], group, place


@torch.no_grad()
def encode_contexts(tokenizer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize normalised context windows (B, L, F) → (s1, s2) ids, each (B, L).

    Equal rows (several samples of one context) are encoded once; rows are independent, so each
    row gets the ids it would get alone."""
    shared = distinct_rows(x.reshape(len(x), -1))
    s1, s2 = _encode_chunks(tokenizer, x if shared is None else x[shared[0]])
    return (s1, s2) if shared is None else (s1[shared[1]], s2[shared[1]])


def _encode_chunks(tokenizer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`tokenizer.encode` in chunks of `tokenizer_rows` windows; a chunk of fewer than MIN_GEMM_ROWS bars is
    padded (CPU GEMMs with a dozen rows or fewer round differently), so a window's ids never depend on
    which others are encoded with it."""
    parts, rows = [], tokenizer_rows(tokenizer, x.shape[1])
    for lo in range(0, len(x), rows):
        part = x[lo:lo + rows]
        pad = -(-MIN_GEMM_ROWS // max(1, x.shape[1])) - len(part)
        padded = torch.cat([part, part[:1].expand(pad, *part.shape[1:])]) if pad > 0 else part
        s1, s2 = tokenizer.encode(padded, half=True)
        parts.append((s1[:len(part)], s2[:len(part)]))
    if not parts:
        return tokenizer.encode(x, half=True)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


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
                   max_context: int = 512, rows: int | None = None, *, share_context: bool = False) -> torch.Tensor:
    """Decode context + generated ids (B, L + H) like the reference — the causal tokenizer decoder sees
    the last `max_context` tokens — and return the last `horizon` positions (B, H, F), in row chunks.

    `share_context` (the generator sets it when it draws several samples per context): each distinct context
    is decoded once and each row runs only its horizon over it (`KronosTokenizer.decode_continuations`);
    equal to the whole-window decode to float32 rounding. Every row takes the path the flag names, shared
    or not, so its bytes never depend on which other rows are in the batch. Without samples to share, the
    whole-window decode is faster (one pass, no key/value copies), hence the flag."""
    start = max(0, s1.shape[1] - max_context)
    P = s1.shape[1] - start - horizon  # decoded context positions
    rows = rows or tokenizer_rows(tokenizer, s1.shape[1] - start)
    if not share_context or P <= 0:
        parts = [tokenizer.decode((s1[lo:lo + rows, start:], s2[lo:lo + rows, start:]), half=True)[:, -horizon:]
                 for lo in range(0, len(s1), rows)]
        return torch.cat(parts)
    context = torch.cat([s1[:, start:start + P], s2[:, start:start + P]], 1)
    first, inverse = distinct_rows(context) or (torch.arange(len(s1), device=s1.device),) * 2
    return tokenizer.decode_continuations((s1[first, start:start + P], s2[first, start:start + P]),
                                          (s1[:, -horizon:], s2[:, -horizon:]), inverse, rows=rows)
