"""Preallocated key/value cache for incremental Kronos decoding."""

from __future__ import annotations

from dataclasses import dataclass

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
