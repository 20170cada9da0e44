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


class SharedKV(NamedTuple):
    """One attention layer's view of a `SharedPrefixCache`: prefix (N, H, P, K) per group, suffix
    (B, H, S, K) per row (S: the positions written so far), and each row's query slot."""

    prefix_k: torch.Tensor
    prefix_v: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    group: torch.Tensor  # (B,) int64: the group whose prefix row b continues
    place: torch.Tensor  # (B,) int64: row b's query slot in that group, 0 ≤ place < group_size
    group_size: int


@dataclass
class SharedPrefixCache:
    """Decode-time cache of a batch whose rows continue shared contexts (several samples of each).

    prefix_k/v: per layer (N, H, P, K), one copy of a context's P positions per group of at most
    `group_size` rows; dep_prefix_k/v: the s2 layer's (N, 4, P, D/4). k/v and dep_k/v: the positions
    P.. that each row generates itself, (B, ·, S, ·). Row b's query goes to slot `place[b]` of group
    `group[b]` (unused slots of a group stay empty); the slots are fixed by the caller so that a row is
    computed the same way in any batch (see `generate.sampler.shared_groups`).

    Only single-token steps (decode_s1_cached with T = 1): a prefill goes into a `KronosCache`, whose
    rows become the prefix (`from_prefix`). `length` counts prefix and suffix positions.
    """

    prefix_k: list[torch.Tensor]
    prefix_v: list[torch.Tensor]
    dep_prefix_k: torch.Tensor
    dep_prefix_v: torch.Tensor
    k: list[torch.Tensor]
    v: list[torch.Tensor]
    dep_k: torch.Tensor
    dep_v: torch.Tensor
    group: torch.Tensor
    place: torch.Tensor
    group_size: int
    length: int

    @classmethod
    def from_prefix(cls, prefix: KronosCache, group_context: torch.Tensor, group: torch.Tensor,
                    place: torch.Tensor, group_size: int, suffix_len: int, *,
                    prefix_dtype: torch.dtype | None = None, dtype: torch.dtype | None = None) -> SharedPrefixCache:
        """Groups from the rows of a prefilled cache (one row per distinct context): group n continues
        context `group_context[n]`; rows b of the batch sit in slot place[b] of group group[b]. The suffix
        holds `suffix_len` positions per row. prefix_dtype / dtype default to the prefix cache's."""
        n, p = prefix.length, prefix_dtype or prefix.dep_k.dtype

        def take(t: torch.Tensor) -> torch.Tensor:  # (C, H, ≥n, K) → (N, H, n, K), contiguous
            return t[group_context, :, :n].to(p)

        def suffix(t: torch.Tensor) -> torch.Tensor:  # uninitialised: a position is written before it is read
            return t.new_empty((len(group), t.shape[1], suffix_len, t.shape[3]), dtype=dtype or t.dtype)

        return cls([take(t) for t in prefix.k], [take(t) for t in prefix.v], take(prefix.dep_k), take(prefix.dep_v),
                   [suffix(t) for t in prefix.k], [suffix(t) for t in prefix.v], suffix(prefix.dep_k),
                   suffix(prefix.dep_v), group, place, group_size, n)

    @property
    def batch_size(self) -> int:
        return len(self.group)

    @property
    def prefix_len(self) -> int:
        return self.dep_prefix_k.shape[2]

    @property
    def max_len(self) -> int:
        return self.prefix_len + self.dep_k.shape[2]

    @property
    def free(self) -> int:
        return self.max_len - self.length

    def _view(self, pk, pv, k, v, end: int) -> SharedKV:
        s = end - self.prefix_len
        return SharedKV(pk, pv, k[:, :, :s], v[:, :, :s], self.group, self.place, self.group_size)

    def layer(self, i: int) -> SharedKV:
        """Layer i with its whole suffix (the layer writes position `start` and reads up to it)."""
        return self._view(self.prefix_k[i], self.prefix_v[i], self.k[i], self.v[i], self.max_len)

    def write_dep(self, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        s = start - self.prefix_len
        if s < 0:
            raise ValueError("a shared-prefix cache is written one generated position at a time")
        self.dep_k[:, :, s:s + k.shape[2]], self.dep_v[:, :, s:s + k.shape[2]] = k, v

    def dep(self) -> SharedKV:
        return self._view(self.dep_prefix_k, self.dep_prefix_v, self.dep_k, self.dep_v, self.length)
