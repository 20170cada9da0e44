"""KronosTokenizer: K-line bars (B, T, d_in) ⇄ hierarchical tokens (s1, s2) via BSQ.

encode: embed → causal blocks → quant_embed → normalise → sign → ids.
decode: ids → ±1/sqrt(D) codes → post_quant_embed → causal blocks → head.
Training also decodes a coarse path from the s1 bits alone (post_quant_embed_pre, same decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .bsq import BSQLoss, BSQuantizer
from .configs import TOKENIZER_KEYS
from .hub import CheckpointMixin
from .layers import TransformerBlock, rope_cos_sin

MIN_GEMM_ROWS = 32  # decode_continuations pads a chunk to at least this many token rows (batch invariance)


@dataclass
class TokenizerOutput:
    """Training forward pass of the tokenizer."""

    recon_coarse: torch.Tensor  # (B, T, d_in) decoded from the s1 bits only
    recon_full: torch.Tensor  # (B, T, d_in) decoded from all bits
    bsq_loss: BSQLoss
    quantized: torch.Tensor  # (B, T, s1_bits + s2_bits), ±1/sqrt(D), straight-through
    s1_ids: torch.Tensor  # (B, T) int64
    s2_ids: torch.Tensor  # (B, T) int64


class KronosTokenizer(CheckpointMixin, nn.Module):
    """Checkpoint-compatible with the reference `KronosTokenizer` (same args, names, numbers)."""

    CONFIG_KEYS = TOKENIZER_KEYS
    KIND = "tokenizer"

    def __init__(self, d_in: int, d_model: int, n_heads: int, ff_dim: int, n_enc_layers: int,
                 n_dec_layers: int, ffn_dropout_p: float, attn_dropout_p: float, resid_dropout_p: float,
                 s1_bits: int, s2_bits: int, beta: float, gamma0: float, gamma: float, zeta: float,
                 group_size: int) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model {d_model} must split into {n_heads} heads of even size")
        if (s1_bits + s2_bits) % group_size:
            raise ValueError(f"s1_bits + s2_bits = {s1_bits + s2_bits} is not divisible by group_size {group_size}")
        if min(n_enc_layers, n_dec_layers) < 1:
            raise ValueError("n_enc_layers and n_dec_layers must be at least 1")
        self._config = dict(d_in=d_in, d_model=d_model, n_heads=n_heads, ff_dim=ff_dim,
                            n_enc_layers=n_enc_layers, n_dec_layers=n_dec_layers,
                            ffn_dropout_p=float(ffn_dropout_p), attn_dropout_p=float(attn_dropout_p),
                            resid_dropout_p=float(resid_dropout_p), s1_bits=s1_bits, s2_bits=s2_bits,
                            beta=float(beta), gamma0=float(gamma0), gamma=float(gamma), zeta=float(zeta),
                            group_size=group_size)
        self.d_in, self.d_model, self.n_heads = d_in, d_model, n_heads
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits

        def block() -> TransformerBlock:
            return TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)

        self.embed = nn.Linear(d_in, d_model)
        self.head = nn.Linear(d_model, d_in)
        # the first "layer" of each stack is the linear embed / post_quant_embed, hence n - 1 blocks
        self.encoder = nn.ModuleList([block() for _ in range(n_enc_layers - 1)])
        self.decoder = nn.ModuleList([block() for _ in range(n_dec_layers - 1)])
        self.quant_embed = nn.Linear(d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(s1_bits, d_model)
        self.post_quant_embed = nn.Linear(self.codebook_dim, d_model)
        self.tokenizer = BSQuantizer(s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size)

    def _stack(self, blocks: nn.ModuleList, z: torch.Tensor) -> torch.Tensor:
        rope = rope_cos_sin(self.d_model // self.n_heads, 0, z.shape[1], z.device)
        for blk in blocks:
            z = blk(z, rope)
        return z

    def _encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) → pre-quantisation (B, T, D)."""
        return self.quant_embed(self._stack(self.encoder, self.embed(x)))

    def _decode_codes(self, codes: torch.Tensor, coarse: bool = False) -> torch.Tensor:
        proj = self.post_quant_embed_pre if coarse else self.post_quant_embed
        return self.head(self._stack(self.decoder, proj(codes.to(proj.weight.dtype))))

    def forward(self, x: torch.Tensor) -> TokenizerOutput:
        """Training pass: both reconstructions, the BSQ loss pieces and the ids."""
        zq, loss = self.tokenizer(self._encode_raw(x), with_loss=True)
        s1, s2 = self.tokenizer.ids(zq.detach(), half=True)
        return TokenizerOutput(self._decode_codes(zq[..., :self.s1_bits], coarse=True),
                               self._decode_codes(zq), loss, zq, s1, s2)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, half: bool = False):
        """(B, T, d_in) normalised bars → (s1_ids, s2_ids) each (B, T) when half, else full ids (B, T).

        Inference only (no gradients); training uses `forward`."""
        zq, _ = self.tokenizer(self._encode_raw(x.to(self.embed.weight.dtype)), with_loss=False)
        return self.tokenizer.ids(zq, half=half)

    @torch.no_grad()
    def decode(self, ids, half: bool = False) -> torch.Tensor:
        """Inverse of `encode`: (s1_ids, s2_ids) when half, else full ids → (B, T, d_in), no gradients."""
        return self._decode_codes(self.tokenizer.codes(ids, half=half))

    @torch.no_grad()
    def decode_continuations(self, prefix: tuple[torch.Tensor, torch.Tensor], suffix: tuple[torch.Tensor, torch.Tensor],
                             prefix_of_row: torch.Tensor, rows: int = 64) -> torch.Tensor:
        """The suffix positions of `decode` for rows that continue shared prefixes, each prefix run once.

        prefix: (s1, s2) ids (N, P) of N distinct prefixes; suffix: (s1, s2) ids (B, S); row b continues
        prefix `prefix_of_row[b]`. → (B, S, d_in), equal to `decode(cat(prefix[prefix_of_row], suffix))[:, P:]`
        to float32 rounding. The decoder is causal, so a prefix's keys/values do not depend on what follows
        it: they are computed once per prefix and each row runs only its S positions over them (several
        samples of a context cost one context pass instead of one each). Rows are independent, in chunks of
        `rows`; a chunk of few short rows is padded (CPU GEMMs with fewer than a dozen rows round
        differently), so a row's bytes do not depend on the batch it is in."""
        dtype = self.post_quant_embed.weight.dtype
        n_heads, head_dim = self.n_heads, self.d_model // self.n_heads
        P, S = prefix[0].shape[1], suffix[0].shape[1]
        device = prefix[0].device

        def chunk(t: torch.Tensor, lo: int, positions: int) -> torch.Tensor:
            part = t[lo:lo + rows]  # rows lo.., padded with copies of row lo up to MIN_GEMM_ROWS matrix rows
            pad = -(-MIN_GEMM_ROWS // positions) - len(part)
            return torch.cat([part, part[:1].expand(pad, *part.shape[1:])]) if pad > 0 else part

        def embed(ids: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return self.post_quant_embed(self.tokenizer.codes(ids, half=True).to(dtype))

        def cache(n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:  # (k, v) of n rows, `length` positions
            return tuple(torch.empty(n, n_heads, length, head_dim, dtype=dtype, device=device) for _ in range(2))

        # The prefixes' keys/values of every block (N, H, P, K), in row chunks.
        rope = rope_cos_sin(head_dim, 0, P, device)
        parts = []  # per chunk: per block (k, v) of its real rows
        for lo in range(0, len(prefix[0]), rows):
            z = embed((chunk(prefix[0], lo, P), chunk(prefix[1], lo, P)))
            kv = [cache(len(z), P) for _ in self.decoder]
            for blk, (k, v) in zip(self.decoder, kv, strict=True):
                z = blk(z, rope, (k, v), 0)
            n = min(rows, len(prefix[0]) - lo)
            parts.append([(k[:n], v[:n]) for k, v in kv])
        kv = [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts])) for i in range(len(self.decoder))]
        rope = rope_cos_sin(head_dim, P, S, device)
        out = []
        for lo in range(0, len(suffix[0]), rows):
            idx = chunk(prefix_of_row, lo, S)
            z = embed((chunk(suffix[0], lo, S), chunk(suffix[1], lo, S)))
            for blk, (k, v) in zip(self.decoder, kv, strict=True):
                k_row, v_row = cache(len(idx), P + S)
                k_row[:, :, :P], v_row[:, :, :P] = k[idx], v[idx]
                z = blk(z, rope, (k_row, v_row), P)
            out.append(self.head(z)[:min(rows, len(suffix[0]) - lo)])
        return torch.cat(out) if out else torch.empty(0, S, self.d_in, dtype=dtype, device=device)
