"""A seeded random tokenizer + predictor pair, tiny enough for the generation tests."""

from __future__ import annotations

from pathlib import Path

import torch

from kronos_synth.model import Kronos, KronosTokenizer

TOK = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
           attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
           zeta=0.05, group_size=4)
PRED = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
            attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


def save_tiny_model(root: Path) -> str:
    """Save the pair under root/tokenizer and root/model (seed 0); returns the model folder."""
    torch.manual_seed(0)
    KronosTokenizer(**TOK).save_pretrained(root / "tokenizer")
    Kronos(**PRED).save_pretrained(root / "model")
    return str(root / "model")
