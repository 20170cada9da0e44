"""Binary spherical quantiser: id packing and the loss pieces."""

import math

import pytest
import torch

from kronos_synth.model import bits_to_ids, ids_to_codes
from kronos_synth.model.bsq import BinarySphericalQuantizer, BSQuantizer

ARGS = dict(beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05)


def test_ids_are_lsb_first_and_invertible():
    codes = torch.tensor([[1.0, -1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, -1.0, 0.0]])
    assert bits_to_ids(codes).tolist() == [1 + 4 + 8, 16]  # value >= 0 is a set bit
    ids = torch.randint(0, 1024, (3, 7), generator=torch.Generator().manual_seed(0))
    assert torch.equal(bits_to_ids(ids_to_codes(ids, 10)), ids)
    assert ids_to_codes(torch.tensor(6), 3).tolist() == [-1.0, 1.0, 1.0]


def test_half_ids_split_the_full_id():
    q = BSQuantizer(10, 10, group_size=4, **ARGS)
    zq, loss = q(torch.randn(2, 9, 20, generator=torch.Generator().manual_seed(1)), with_loss=False)
    assert loss is None
    assert torch.allclose(zq.abs(), torch.full_like(zq, 20 ** -0.5))
    s1, s2 = q.ids(zq, half=True)
    assert torch.equal(q.ids(zq, half=False), s1 + (s2 << 10))
    assert torch.equal(q.codes((s1, s2)), zq) and torch.equal(q.codes(q.ids(zq, half=False), half=False), zq)


def test_straight_through_gradient():
    bsq = BinarySphericalQuantizer(8, group_size=4, **ARGS)
    z = torch.randn(5, 8, requires_grad=True)
    bsq.quantize(z).sum().backward()
    assert torch.allclose(z.grad, torch.full_like(z, 8 ** -0.5))


def test_group_entropy_properties():
    g = torch.Generator().manual_seed(2)
    z = torch.nn.functional.normalize(torch.randn(64, 20, generator=g), dim=-1)
    per_bit = BinarySphericalQuantizer(20, group_size=4, **ARGS)
    one = BinarySphericalQuantizer(20, group_size=1, codebook_entropy="group", **ARGS)
    four = BinarySphericalQuantizer(20, group_size=4, codebook_entropy="group", **ARGS)
    h_bit = per_bit.loss(z, per_bit.quantize(z)).codebook_entropy
    # groups of one bit are the per-bit marginals
    torch.testing.assert_close(one.loss(z, one.quantize(z)).codebook_entropy, h_bit, atol=1e-5, rtol=0)
    # joint entropy of a group ≤ sum of its marginals: strictly when the bits are correlated
    # (tokens all-positive or all-negative: every bit is 50/50 but groups are far from uniform)
    corr = torch.cat([torch.ones(8, 20), -torch.ones(8, 20)]) * 3.0  # peaked (not unit-norm, on purpose)
    h_corr_bit = per_bit.loss(corr, per_bit.quantize(corr)).codebook_entropy
    torch.testing.assert_close(h_corr_bit, torch.tensor(20 * math.log(2)))
    assert four.loss(corr, four.quantize(corr)).codebook_entropy < h_corr_bit - 0.1
    assert four.loss(z, four.quantize(z)).codebook_entropy <= h_bit + 1e-5
    # equal for a single token (a product distribution)
    torch.testing.assert_close(four.loss(z[:1], four.quantize(z[:1])).codebook_entropy,
                               per_bit.loss(z[:1], per_bit.quantize(z[:1])).codebook_entropy, atol=1e-5, rtol=0)
    lo = per_bit.loss(z, per_bit.quantize(z))
    expected = 0.05 * lo.commitment + 0.05 * (1.0 * lo.per_sample_entropy - 1.1 * lo.codebook_entropy)
    torch.testing.assert_close(lo.total, expected)


def test_loss_matches_reference():
    ref = pytest.importorskip("model.module")
    g = torch.Generator().manual_seed(3)
    z = torch.nn.functional.normalize(torch.randn(4, 30, 20, generator=g), dim=-1)
    theirs = ref.BinarySphericalQuantizer(20, group_size=5, **ARGS).train()
    ours = BinarySphericalQuantizer(20, group_size=5, **ARGS)
    zq_ref, loss_ref, metrics = theirs(z)
    zq = ours.quantize(z)
    lo = ours.loss(z, zq)
    assert torch.equal(zq, zq_ref)
    torch.testing.assert_close(lo.total, loss_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(lo.codebook_entropy, metrics["H"], atol=1e-5, rtol=0)
    torch.testing.assert_close(0.05 * lo.commitment, 0.05 * ((zq - z) ** 2).sum(-1).mean())
    # the state-dict buffers equal the reference's
    assert torch.equal(ours.basis, theirs.basis) and torch.equal(ours.group_basis, theirs.group_basis)
    assert torch.equal(ours.group_codebook, theirs.group_codebook)
