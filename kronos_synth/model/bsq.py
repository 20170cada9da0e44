"""Binary spherical quantisation (BSQ) as Kronos uses it, and its training loss.

A D = s1_bits + s2_bits dimensional vector is L2-normalised, each coordinate becomes ±1/sqrt(D)
(straight-through gradient). Token ids are LSB-first within each half:
s1 = Σ_{i<s1_bits} bit_i 2^i over bits 0..s1_bits-1, s2 likewise over the remaining bits,
bit = (value >= 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def bits_to_ids(codes: torch.Tensor) -> torch.Tensor:
    """(..., n) codes → (...,) int64 ids, LSB first, bit = code >= 0."""
    weights = 2 ** torch.arange(codes.shape[-1], device=codes.device, dtype=torch.long)
    return ((codes >= 0).long() * weights).sum(-1)


def ids_to_codes(ids: torch.Tensor, n_bits: int) -> torch.Tensor:
    """(...,) ids → (..., n_bits) float32 codes in {-1, +1}, LSB first (inverse of bits_to_ids)."""
    weights = 2 ** torch.arange(n_bits, device=ids.device, dtype=torch.long)
    return ((ids.long().unsqueeze(-1) & weights) != 0).float() * 2 - 1


def _entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return -(p * torch.log(p + 1e-8)).sum(dim)


@dataclass
class BSQLoss:
    """Pieces of the BSQ loss; total = beta·commitment + zeta·(gamma0·per_sample − gamma·codebook)."""

    total: torch.Tensor
    commitment: torch.Tensor  # mean over tokens of ||zq - z||², unweighted
    per_sample_entropy: torch.Tensor  # mean over tokens of Σ_bits H(p(bit)), want low (confident)
    codebook_entropy: torch.Tensor  # entropy of the batch-average code distribution, want high


class BinarySphericalQuantizer(nn.Module):
    """Sign quantiser plus the BSQ loss. Holds the reference's `basis`/`group_basis` buffers
    (MSB-first powers of two, int64) so state dicts match; ids use the LSB-first functions above.

    codebook_entropy: "reference" reproduces the released training code, whose group
    probabilities are overwritten by the per-bit ones, so the codebook entropy is the sum of
    per-bit marginal entropies (group_size has no effect); "group" is the BSQ paper's
    approximation, the sum over groups of group_size bits of the entropy of the batch-average
    distribution over the 2^group_size sub-codes.
    """

    def __init__(self, embed_dim: int, beta: float, gamma0: float, gamma: float, zeta: float,
                 group_size: int, codebook_entropy: str = "reference") -> None:
        super().__init__()
        if embed_dim % group_size:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by group_size {group_size}")
        if codebook_entropy not in ("reference", "group"):
            raise ValueError(f"codebook_entropy must be 'reference' or 'group', got {codebook_entropy!r}")
        self.embed_dim, self.group_size = embed_dim, group_size
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        self.codebook_entropy_mode = codebook_entropy
        self.register_buffer("basis", 2 ** torch.arange(embed_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))
        # all 2^g sub-codes, MSB first in the row (as the reference orders them), {-1, +1}
        sub = torch.arange(2 ** group_size).unsqueeze(-1)
        self.register_buffer("group_codebook", ((sub // self.group_basis) % 2).float() * 2 - 1,
                             persistent=False)

    @property
    def scale(self) -> float:
        return self.embed_dim ** -0.5

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(..., D) unit vectors → (..., D) ±1/sqrt(D), gradient passed straight through."""
        zhat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return (z + (zhat - z).detach()) * self.scale

    def loss(self, z: torch.Tensor, zq: torch.Tensor) -> BSQLoss:
        """BSQ loss of normalised inputs z (..., D) and their quantised zq (..., D)."""
        commitment = ((zq.detach() - z) ** 2).sum(-1).mean()
        # per-bit probability of -1 under the soft assignment exp(2 z·c/sqrt(D))
        p_neg = torch.sigmoid(-4 * z * self.scale)
        bit_probs = torch.stack([p_neg, 1 - p_neg], dim=-1)  # (..., D, 2)
        per_sample = _entropy(bit_probs).sum(-1).mean()
        if self.codebook_entropy_mode == "reference":
            codebook = _entropy(bit_probs.reshape(-1, self.embed_dim, 2).mean(0)).sum()
        else:
            groups = z.reshape(-1, self.embed_dim // self.group_size, self.group_size)  # (N, G, g)
            logits = 2 * torch.einsum("ngc,kc->ngk", groups, self.group_codebook * self.scale)
            codebook = _entropy(logits.softmax(-1).mean(0)).sum()  # Σ_G H(avg p over 2^g codes)
        total = self.beta * commitment + self.zeta * (self.gamma0 * per_sample - self.gamma * codebook)
        return BSQLoss(total, commitment, per_sample, codebook)


class BSQuantizer(nn.Module):
    """normalise → quantise → ids; the module the tokenizer holds as `tokenizer`."""

    def __init__(self, s1_bits: int, s2_bits: int, beta: float, gamma0: float, gamma: float, zeta: float,
                 group_size: int, codebook_entropy: str = "reference") -> None:
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = BinarySphericalQuantizer(self.codebook_dim, beta, gamma0, gamma, zeta, group_size,
                                            codebook_entropy)

    def forward(self, z: torch.Tensor, with_loss: bool = True) -> tuple[torch.Tensor, BSQLoss | None]:
        """z (..., D) raw → quantised (..., D) and the loss (None when with_loss is False)."""
        z = F.normalize(z, dim=-1)
        zq = self.bsq.quantize(z)
        return zq, (self.bsq.loss(z, zq) if with_loss else None)

    def ids(self, zq: torch.Tensor, half: bool = True):
        """Quantised (..., D) → (s1_ids, s2_ids) when half, else full D-bit ids (...,)."""
        if half:
            return bits_to_ids(zq[..., :self.s1_bits]), bits_to_ids(zq[..., self.s1_bits:])
        return bits_to_ids(zq)

    def codes(self, ids, half: bool = True) -> torch.Tensor:
        """Inverse of `ids`: (s1, s2) or full ids → quantised values ±1/sqrt(D), (..., D) float32."""
        if half:
            s1, s2 = ids
            bits = torch.cat([ids_to_codes(s1, self.s1_bits), ids_to_codes(s2, self.s2_bits)], dim=-1)
        else:
            bits = ids_to_codes(ids, self.codebook_dim)
        return bits * self.bsq.scale
