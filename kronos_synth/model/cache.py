"""Key/value caches for incremental Kronos decoding.

`KronosCache` holds every row's K/V for the whole window (one row, one copy). `SharedPrefixCache` is
for a batch of several samples per context: the context's K/V (the prefix) is stored once per group of
samples and only the generated tokens' K/V (the suffix) once per row, so single-query attention reads a
context once for all of its samples (`layers.shared_prefix_attention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import native


@dataclass
class KronosCache:
    """Per-layer K/V of the main stack (RoPE applied at absolute positions 0..length-1) and the
    s2 layer's K/V of the normalised hidden states (no RoPE), all (B, H, max_len, K).

    Positions are window-relative: when a window would exceed `max_len` (the model context),
    `reset()` and prefill the last `max_len` tokens again — that is the reference semantics.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    dep_k: torch.Tensor
    dep_v: torch.Tensor
    length: int = 0

    @property
    def batch_size(self) -> int:
        return self.dep_k.shape[0]

    @property
    def max_len(self) -> int:
        return self.dep_k.shape[2]

    @property
    def free(self) -> int:
        """How many more tokens fit."""
        return self.max_len - self.length

    def reset(self) -> None:
        """Forget everything (the tensors are kept and overwritten by the next prefill)."""
        self.length = 0

    def truncate(self, length: int) -> None:
        """Keep only the first `length` positions (valid: earlier positions never see later ones)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length

    def select(self, index: torch.Tensor) -> KronosCache:
        """A new cache with batch rows `index` (e.g. to drop finished rows or repeat a prefix)."""
        return KronosCache([t[index] for t in self.k], [t[index] for t in self.v],
                           self.dep_k[index], self.dep_v[index], self.length)

    def rows(self, lo: int, hi: int) -> KronosCache:
        """A view of batch rows lo..hi-1 sharing this cache's memory (writes go through), e.g. to
        prefill a large batch in row chunks; the caller sets this cache's `length` afterwards."""
        return KronosCache([t[lo:hi] for t in self.k], [t[lo:hi] for t in self.v],
                           self.dep_k[lo:hi], self.dep_v[lo:hi], self.length)

    # what one attention layer sees (the same calls as SharedPrefixCache)
    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[i], self.v[i]

    def write_dep(self, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        self.dep_k[:, :, start:start + k.shape[2]], self.dep_v[:, :, start:start + k.shape[2]] = k, v

    def dep(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dep_k[:, :, :self.length], self.dep_v[:, :, :self.length]


SUFFIX_BLOCK = 16  # a shared-prefix cache's suffix grows this many positions at a time


class SharedKV(NamedTuple):
    """One attention layer's view of a `SharedPrefixCache`: the prefix (N, H, P, K) per group, the suffix
    (B, H, C, K) per row of which the first `length` positions are written, and each row's query slot."""

    prefix_k: torch.Tensor
    prefix_v: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    length: int
    group: torch.Tensor  # (B,) int64: the group whose prefix row b continues
    place: torch.Tensor  # (B,) int64: row b's query slot in that group, 0 ≤ place < group_size
    group_size: int
    packed: tuple[torch.Tensor, torch.Tensor] | None = None  # the prefix for native.prefix_attention, or None


class SharedPrefixCache:
    """Decode-time cache of a batch whose rows continue shared contexts (several samples of each).

    prefix_k/v: per layer (N, H, P, K), one copy of a context's P positions per group of at most
    `group_size` rows; dep_prefix_k/v: the s2 layer's (N, 4, P, D/4). k/v and dep_k/dep_v: the positions
    P.. that each row generates itself, (B, ·, C, ·). Row b's query goes to slot `place[b]` of group
    `group[b]` (unused slots of a group stay empty); the slots are fixed by the caller so that a row is
    computed the same way in any batch (see `generate.sampler.shared_groups`).

    Layout of the suffix: with the compiled attention kernel (`native.py`, CPU) it is allocated whole and
    position-major (position j of every row in one block; the kernel reads only the positions written).
    Without it the suffix is kept dense — C, its capacity, grows SUFFIX_BLOCK positions at a time and
    attention reads all C positions, masking those not written yet — because MKL's batched matrix-vector
    products read a slice of a longer buffer 2-3x slower than a dense tensor. Growing moves the suffix
    within its own buffer through one scratch buffer, so decoding allocates nothing.

    Layout of the prefix: with the compiled kernel and bf16 heads of 64 or 128, also packed once for
    `native.prefix_attention` (the samples of a context then share every load of its keys and values: ~2x
    the position-major prefix per step).

    Only single-token steps (decode_s1_cached with T = 1): a prefill goes into a `KronosCache`, whose
    rows become the prefix (`from_prefix`). `length` counts prefix and suffix positions.
    """

    def __init__(self, prefix_k: list[torch.Tensor], prefix_v: list[torch.Tensor], dep_prefix_k: torch.Tensor,
                 dep_prefix_v: torch.Tensor, group: torch.Tensor, place: torch.Tensor, group_size: int,
                 max_len: int, dtype: torch.dtype) -> None:
        self.prefix_k, self.prefix_v, self.dep_prefix_k, self.dep_prefix_v = prefix_k, prefix_v, dep_prefix_k, dep_prefix_v
        self.group, self.place, self.group_size = group, place, group_size
        self.max_len, self.length, self.capacity = max_len, self.prefix_len, 0
        prefixes = [*zip(prefix_k, prefix_v, strict=True), (dep_prefix_k, dep_prefix_v)]
        self.packed = [native.pack_prefix(k, v) if native.packs(k) else None for k, v in prefixes]
        n, device = max_len - self.prefix_len, dep_prefix_k.device
        # (rows, heads, head_dim) of each suffix tensor: k of every layer, v of every layer, dep_k, dep_v
        self._shapes = [(len(group), t.shape[1], t.shape[3]) for t in [*prefix_k, *prefix_v, dep_prefix_k, dep_prefix_v]]
        if device.type == "cpu" and native.available():
            # The compiled kernel reads only the written positions, fastest position-major: the whole
            # suffix up front, never moved.
            self._suffix = [native.position_major(b, h, n, k, dtype=dtype, device=device) for b, h, k in self._shapes]
            self.capacity = n
            return
        sizes = [b * h * n * k for b, h, k in self._shapes]
        self._buffers = [torch.empty(size, dtype=dtype, device=device) for size in sizes]
        self._scratch = torch.empty(max(sizes), dtype=dtype, device=device)
        self._suffix = [buf[:0].view(b, h, 0, k) for (b, h, k), buf in zip(self._shapes, self._buffers, strict=True)]

    @classmethod
    def from_prefix(cls, prefix: KronosCache, group_context: torch.Tensor, group: torch.Tensor,
                    place: torch.Tensor, group_size: int, suffix_len: int, *,
                    prefix_dtype: torch.dtype | None = None, dtype: torch.dtype | None = None) -> SharedPrefixCache:
        """Groups from the rows of a prefilled cache (one row per distinct context): group n continues
        context `group_context[n]`; rows b of the batch sit in slot place[b] of group group[b]. The suffix
        holds up to `suffix_len` positions per row. prefix_dtype / dtype default to the prefix cache's."""
        n, p = prefix.length, prefix_dtype or prefix.dep_k.dtype

        def take(t: torch.Tensor) -> torch.Tensor:  # (C, H, ≥n, K) → (N, H, n, K)
            x = t[group_context, :, :n]
            if t.device.type == "cpu" and native.available():  # the compiled kernel's layout
                return native.position_major(*x.shape, dtype=p, device=t.device).copy_(x)
            return x.to(p).contiguous()  # PyTorch's stacked products

        return cls([take(t) for t in prefix.k], [take(t) for t in prefix.v], take(prefix.dep_k), take(prefix.dep_v),
                   group, place, group_size, n + suffix_len, dtype or prefix.dep_k.dtype)

    @property
    def batch_size(self) -> int:
        return len(self.group)

    @property
    def prefix_len(self) -> int:
        return self.dep_prefix_k.shape[2]

    @property
    def free(self) -> int:
        return self.max_len - self.length

    @property
    def k(self) -> list[torch.Tensor]:
        return self._suffix[:len(self.prefix_k)]

    @property
    def v(self) -> list[torch.Tensor]:
        return self._suffix[len(self.prefix_k):-2]

    @property
    def dep_k(self) -> torch.Tensor:
        return self._suffix[-2]

    @property
    def dep_v(self) -> torch.Tensor:
        return self._suffix[-1]

    def reserve(self, n: int) -> None:
        """Room for n suffix positions: every suffix tensor grows to a dense (B, H, C, K) with C ≥ n."""
        if n <= self.capacity:
            return
        if n > self.max_len - self.prefix_len:
            raise ValueError(f"cache holds {self.max_len} positions, {self.prefix_len + n} needed")
        old, new = self.capacity, min(-(-n // SUFFIX_BLOCK) * SUFFIX_BLOCK, self.max_len - self.prefix_len)
        for j, ((b, h, k), buf) in enumerate(zip(self._shapes, self._buffers, strict=True)):
            moved = self._scratch[:b * h * old * k].view(b, h, old, k)
            moved.copy_(self._suffix[j])  # the grown view overlaps the old one in the same buffer
            grown = buf[:b * h * new * k].view(b, h, new, k)
            grown[:, :, :old] = moved
            grown[:, :, old:] = 0  # masked when read, but must be finite (0 · NaN = NaN)
            self._suffix[j] = grown
        self.capacity = new

    def _view(self, j: int, prefix_k: torch.Tensor, prefix_v: torch.Tensor, v_index: int,
              packed: tuple[torch.Tensor, torch.Tensor] | None) -> SharedKV:
        return SharedKV(prefix_k, prefix_v, self._suffix[j], self._suffix[v_index], self.length - self.prefix_len,
                        self.group, self.place, self.group_size, packed)

    def layer(self, i: int) -> SharedKV:
        """Layer i as the next token sees it (with room for it: the layer writes it at suffix `length`)."""
        self.reserve(self.length - self.prefix_len + 1)
        return self._view(i, self.prefix_k[i], self.prefix_v[i], len(self.prefix_k) + i, self.packed[i])

    def write_dep(self, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        s = start - self.prefix_len
        if s < 0 or k.shape[2] != 1:
            raise ValueError("a shared-prefix cache is written one generated position at a time")
        self.reserve(s + 1)
        self.dep_k[:, :, s], self.dep_v[:, :, s] = k[:, :, 0], v[:, :, 0]

    def dep(self) -> SharedKV:
        return self._view(len(self._suffix) - 2, self.dep_prefix_k, self.dep_prefix_v, len(self._suffix) - 1,
                          self.packed[-1])
