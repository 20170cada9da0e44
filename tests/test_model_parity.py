"""Checkpoint and numerical parity with the reference Kronos release (PyPI kronos-model-arch)."""

import pytest
import torch

from kronos_synth.model import Kronos, KronosTokenizer, named_config

ref = pytest.importorskip("model")  # the reference package; needs einops


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Seeded non-trivial weights (incl. biases and norm gains, which start at 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


def _stamps(batch: int, length: int, g: torch.Generator) -> torch.Tensor:
    cols = [torch.randint(0, n, (batch, length), generator=g) for n in (60, 24, 7, 32, 13)]
    return torch.stack(cols, -1).float()


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """A reference tokenizer saved by the reference, loaded by us; and ours loaded by the reference."""
    torch.manual_seed(0)
    theirs = ref.KronosTokenizer(**named_config("Kronos-Tokenizer-2k").config)
    _perturb(theirs, 1)
    folder = tmp_path_factory.mktemp("ref_tok")
    theirs.save_pretrained(folder)
    ours = KronosTokenizer.from_pretrained(folder)
    back = tmp_path_factory.mktemp("our_tok")
    ours.save_pretrained(back)
    return theirs.eval(), ours, ref.KronosTokenizer.from_pretrained(str(back)).eval()


def test_tokenizer_ids_and_decode_match_reference(tokenizers):
    theirs, ours, theirs_from_ours = tokenizers
    x = torch.randn(3, 120, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        r1, r2 = theirs.encode(x, half=True)
        o1, o2 = ours.encode(x, half=True)
        assert torch.equal(r1, o1) and torch.equal(r2, o2)
        assert len(torch.unique(o1)) > 50  # the comparison is not trivially on constant ids
        assert torch.equal(theirs.encode(x), ours.encode(x))  # full 20-bit ids
        torch.testing.assert_close(ours.decode((o1, o2), half=True), theirs.decode((r1, r2), half=True),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.decode(ours.encode(x)), theirs.decode(theirs.encode(x)), atol=1e-5, rtol=0)
        # our save_pretrained folder loads into the reference class with identical behaviour
        torch.testing.assert_close(theirs_from_ours.decode((r1, r2), half=True),
                                   theirs.decode((r1, r2), half=True), atol=0, rtol=0)


def test_tokenizer_training_pass_matches_reference(tokenizers):
    theirs, ours, _ = tokenizers
    theirs.train(), ours.train()
    try:
        x = torch.randn(2, 64, 6, generator=torch.Generator().manual_seed(3))
        (z_pre, z), loss, quantized, _ = theirs(x)
        out = ours(x)
        torch.testing.assert_close(out.recon_coarse, z_pre, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.recon_full, z, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.quantized, quantized, atol=0, rtol=0)
        torch.testing.assert_close(out.bsq_loss.total, loss, atol=1e-6, rtol=0)
    finally:
        theirs.eval(), ours.eval()


@pytest.fixture(scope="module", params=["Kronos-mini", "Kronos-small"])
def predictors(request, tmp_path_factory):
    name = request.param
    torch.manual_seed(4)
    theirs = ref.Kronos(**named_config(name).config)
    _perturb(theirs, 5)
    folder = tmp_path_factory.mktemp(name)
    theirs.save_pretrained(folder)
    ours = Kronos.from_pretrained(folder)
    back = tmp_path_factory.mktemp(name + "_ours")
    ours.save_pretrained(back)
    return theirs.eval(), ours, ref.Kronos.from_pretrained(str(back)).eval()


def test_predictor_state_dicts_interchange(predictors):
    theirs, ours, theirs_from_ours = predictors
    a, b, c = theirs.state_dict(), ours.state_dict(), theirs_from_ours.state_dict()
    assert list(a) == list(b) == list(c)
    for k in a:
        assert torch.equal(a[k], b[k].to(a[k].dtype)) and torch.equal(a[k], c[k]), k


def test_predictor_logits_match_reference(predictors):
    theirs, ours, _ = predictors
    g = torch.Generator().manual_seed(6)
    B, T = 2, 120
    s1, s2, tgt = (torch.randint(0, 1024, (B, T), generator=g) for _ in range(3))
    stamp = _stamps(B, T, g)
    with torch.no_grad():
        r1, r2 = theirs(s1, s2, stamp, use_teacher_forcing=True, s1_targets=tgt)
        o1, o2 = ours(s1, s2, stamp, use_teacher_forcing=True, s1_targets=tgt)
        torch.testing.assert_close(o1, r1, atol=1e-4, rtol=0)
        torch.testing.assert_close(o2, r2, atol=1e-4, rtol=0)
        # the inference calls on a 120-bar window
        rl, rc = theirs.decode_s1(s1, s2, stamp)
        ol, oc = ours.decode_s1(s1, s2, stamp)
        torch.testing.assert_close(ol, rl, atol=1e-4, rtol=0)
        torch.testing.assert_close(oc, rc, atol=1e-4, rtol=0)
        nxt = torch.randint(0, 1024, (B, 1), generator=g)  # one-token query: no RoPE, whole window
        torch.testing.assert_close(ours.decode_s2(oc, nxt), theirs.decode_s2(rc, nxt), atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.decode_s2(oc, tgt), theirs.decode_s2(rc, tgt), atol=1e-4, rtol=0)
        # no stamps at all is allowed by both
        torch.testing.assert_close(ours.decode_s1(s1, s2)[0], theirs.decode_s1(s1, s2)[0], atol=1e-4, rtol=0)


def test_predictor_training_mode_s2_layer_matches_reference(predictors):
    """In training the s2 layer uses RoPE positions and a causal mask (it has no dropout)."""
    theirs, ours, _ = predictors
    g = torch.Generator().manual_seed(7)
    h = torch.randn(2, 40, ours.d_model, generator=g)
    sib = torch.randn(2, 40, ours.d_model, generator=g)
    ref_layer, our_layer = theirs.dep_layer.train(), ours.dep_layer.train()
    try:
        with torch.no_grad():
            torch.testing.assert_close(our_layer(h, sib), ref_layer(h, sib), atol=1e-5, rtol=0)
            # causal: the first position ignores later keys, unlike eval mode
            changed = h.clone()
            changed[:, 1:] += 1.0
            assert torch.allclose(our_layer(h, sib)[:, 0], our_layer(changed, sib)[:, 0], atol=1e-6)
            our_layer.eval()
            assert not torch.allclose(our_layer(h, sib)[:, 0], our_layer(changed, sib)[:, 0], atol=1e-3)
    finally:
        ref_layer.eval(), our_layer.eval()


@torch.no_grad()
def test_greedy_cached_generation_is_token_identical_to_reference():
    """Greedy (top_k=1) decoding through the KV cache, re-prefilling once the window exceeds the
    context, reproduces the reference's auto_regressive_inference exactly."""
    from model.kronos import auto_regressive_inference

    torch.manual_seed(8)
    tcfg = dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
                attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=6, s2_bits=6, beta=0.05, gamma0=1.0,
                gamma=1.1, zeta=0.05, group_size=4)
    pcfg = dict(s1_bits=6, s2_bits=6, n_layers=2, d_model=64, n_heads=4, ff_dim=128, ffn_dropout_p=0.0,
                attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
    ref_tok, ref_model = ref.KronosTokenizer(**tcfg).eval(), ref.Kronos(**pcfg).eval()
    _perturb(ref_tok, 9), _perturb(ref_model, 10)
    tok, model = KronosTokenizer(**tcfg).eval(), Kronos(**pcfg).eval()
    tok.load_state_dict(ref_tok.state_dict()), model.load_state_dict(ref_model.state_dict())

    g = torch.Generator().manual_seed(11)
    B, lookback, horizon, context = 3, 24, 16, 32
    x = torch.randn(B, lookback, 6, generator=g)
    stamps = _stamps(B, lookback + horizon, g)
    expected = auto_regressive_inference(ref_tok, ref_model, x, stamps[:, :lookback], stamps[:, lookback:],
                                         context, horizon, top_k=1, top_p=1.0, sample_count=1)

    s1, s2 = tok.encode(x.clamp(-5, 5), half=True)
    cache = model.init_cache(B, context)
    logits, ctx = model.decode_s1_cached(s1, s2, stamps[:, :lookback], cache)
    for _ in range(horizon):
        n = s1.shape[1]
        nxt1 = logits[:, -1].argmax(-1)
        nxt2 = model.decode_s2_cached(ctx[:, -1], nxt1, cache).argmax(-1)
        s1, s2 = torch.cat([s1, nxt1[:, None]], 1), torch.cat([s2, nxt2[:, None]], 1)
        if cache.free:
            logits, ctx = model.decode_s1_cached(s1[:, -1:], s2[:, -1:], stamps[:, n:n + 1], cache)
        else:  # window > context: the reference recomputes the last `context` tokens from position 0
            cache.reset()
            w = slice(n + 1 - context, n + 1)
            logits, ctx = model.decode_s1_cached(s1[:, w], s2[:, w], stamps[:, w], cache)
    got = tok.decode((s1[:, -context:], s2[:, -context:]), half=True)[:, -horizon:]
    assert s1.shape[1] == lookback + horizon > context
    assert len(torch.unique(s1[:, lookback:])) > 3  # not a degenerate constant continuation
    torch.testing.assert_close(got.numpy(), expected[:, -horizon:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_is_the_three_op_formula_to_the_bit(dtype):
    """RMSNorm runs as one fused op (F.rms_norm): the same bytes as x·rsqrt(mean(x²) + eps)·w in float32."""
    from kronos_synth.model.layers import RMSNorm

    g = torch.Generator().manual_seed(0)
    for dim in (16, 256, 512, 832):
        norm = RMSNorm(dim).to(dtype)
        with torch.no_grad():
            norm.weight.copy_(torch.randn(dim, generator=g))
        x = (torch.randn(64, 3, dim, generator=g) * 3).to(dtype)
        xf = x.float()
        want = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)).type_as(x) * norm.weight
        assert torch.equal(norm(x), want)
