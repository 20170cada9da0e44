"""Our KV-cached counter-based sampler against the reference auto_regressive_inference."""

import numpy as np
import pytest
import torch

from kronos_synth.generate.sampler import SamplingConfig, sample_tokens
from kronos_synth.model import Kronos, KronosTokenizer, named_config

ref = pytest.importorskip("model")  # PyPI kronos-model-arch, the reference implementation


def _perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


@torch.no_grad()
def test_greedy_sampler_is_token_identical_to_reference_kronos_small_shape():
    torch.manual_seed(0)
    ref_tok = ref.KronosTokenizer(**named_config("Kronos-Tokenizer-base").config).eval()
    ref_model = ref.Kronos(**named_config("Kronos-small").config).eval()
    _perturb(ref_tok, 1), _perturb(ref_model, 2)
    tok, model = KronosTokenizer.from_config("Kronos-Tokenizer-base").eval(), Kronos.from_config("Kronos-small").eval()
    tok.load_state_dict(ref_tok.state_dict()), model.load_state_dict(ref_model.state_dict())

    g = torch.Generator().manual_seed(3)
    b, lookback, horizon = 2, 120, 16
    x = torch.randn(b, lookback, 6, generator=g)
    stamps = torch.stack([torch.randint(0, n, (b, lookback + horizon), generator=g) for n in (60, 24, 7, 32, 13)],
                         -1).float()
    from model.kronos import auto_regressive_inference

    expected = auto_regressive_inference(ref_tok, ref_model, x, stamps[:, :lookback], stamps[:, lookback:], 512,
                                         horizon, top_k=1, top_p=1.0, sample_count=1)[:, -horizon:]

    s1, s2 = tok.encode(x.clamp(-5, 5), half=True)
    g1, g2 = sample_tokens(model, s1, s2, stamps, horizon, SamplingConfig(temperature=1.0, top_k=1, top_p=1.0),
                           seed=0, sequence_ids=np.arange(b))
    got = tok.decode((torch.cat([s1, g1], 1), torch.cat([s2, g2], 1)), half=True)[:, -horizon:]
    assert len(torch.unique(g1)) > 3
    # identical tokens decode to identical values; one different token would move them by O(0.1)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_sampler_reprefills_past_the_model_context():
    """With a context of 20 tokens and 30 + 12 bars, sampling crosses the limit and keeps going;
    greedy output equals a step-by-step uncached decode of the last 20 tokens."""
    torch.manual_seed(0)
    cfg = dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
               attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
    model = Kronos(**cfg).eval()
    _perturb(model, 5)
    g = torch.Generator().manual_seed(1)
    s1 = torch.randint(0, 16, (3, 30), generator=g)
    s2 = torch.randint(0, 16, (3, 30), generator=g)
    stamps = torch.zeros(3, 42, 5)
    g1, g2 = sample_tokens(model, s1[:, -20:], s2[:, -20:], stamps[:, 10:], 12,
                           SamplingConfig(temperature=1.0, top_k=1, top_p=1.0), seed=0,
                           sequence_ids=np.arange(3), max_context=20)
    a1, a2 = s1.clone(), s2.clone()
    for t in range(12):
        w1, w2 = a1[:, -20:], a2[:, -20:]
        logits, ctx = model.decode_s1(w1, w2, stamps[:, 30 + t - 20 : 30 + t])
        n1 = logits[:, -1].argmax(-1)
        n2 = model.decode_s2(ctx, n1[:, None])[:, -1].argmax(-1)
        a1, a2 = torch.cat([a1, n1[:, None]], 1), torch.cat([a2, n2[:, None]], 1)
    assert torch.equal(g1, a1[:, 30:]) and torch.equal(g2, a2[:, 30:])
