"""Every ANLCL loss term on hand-checkable cases."""
import math

import pytest
import torch
import torch.nn.functional as F

from anlcl_lite import Decomposer, GeneratorConfig, PatchDiscriminator
from anlcl_lite.losses import (LayerContrast, LocationContrast, asymmetric_loss, choose_eta, dispersion, info_nce,
                               lsgan_discriminator, lsgan_generator, patch_entropy, self_consistency, sparsity)
from anlcl_lite.losses.nce import gathered_logits, nce_from_logits
from anlcl_lite.objective import LossConfig, Objective
from anlcl_lite.sampling import StepRandom, gather_locations, nearest, patch_descriptors


def test_lsgan_terms():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert lsgan_discriminator(ones, zeros) == 0
    assert lsgan_discriminator(zeros, ones) == pytest.approx(1.0)  # ½(1 + 1)
    assert lsgan_generator(ones) == 0
    assert lsgan_generator(torch.full((1, 1, 2, 2), 0.5)) == pytest.approx(0.25)


def test_self_consistency_and_sparsity():
    o = torch.rand(1, 3, 4, 4)
    b = o * 0.7
    assert self_consistency(b, o - b, o) == pytest.approx(0.0, abs=1e-12)
    assert self_consistency(b, torch.zeros_like(o), o) == pytest.approx(float(((0.3 * o) ** 2).mean()))
    r = torch.tensor([[-0.5, 0.0], [0.25, 0.25]])
    assert sparsity(r) == pytest.approx(0.25)


def test_patchnce_equals_cross_entropy_on_a_toy_case():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    pos = F.normalize(torch.randn(5, 1, 8, generator=g), dim=-1)
    neg = F.normalize(torch.randn(5, 7, 8, generator=g), dim=-1)
    tau = 0.07
    logits = torch.cat([(q[:, None] * pos).sum(-1), (q[:, None] * neg).sum(-1)], 1) / tau
    expected = F.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    assert info_nce(q, pos, neg, tau) == pytest.approx(float(expected), rel=1e-5)


def test_multi_positive_nce_by_hand():
    q = torch.tensor([1.0, 0.0])
    pos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[-1.0, 0.0]])
    e = math.e
    by_hand = 0.5 * (-math.log(e / (e + 1 / e)) - math.log(1 / (1 + 1 / e)))
    assert info_nce(q, pos, neg, 1.0) == pytest.approx(by_hand, rel=1e-6)


def test_gathered_logits_match_explicit_gather():
    g = torch.Generator().manual_seed(2)
    q, keys = torch.randn(2, 3, 4, generator=g), torch.randn(2, 10, 4, generator=g)
    idx = torch.randint(10, (2, 3, 5), generator=g)
    explicit = (q.unsqueeze(2) * gather_locations(keys, idx)).sum(-1) / 0.5
    assert torch.allclose(gathered_logits(q, keys, idx, 0.5), explicit, atol=1e-6)


def test_entropy_and_eta_flip_with_entropy_order():
    flat = torch.full((1, 10, 27), 0.3)
    flat[0, 0, 0] = 0.31  # nearly constant: all but one value in the lowest bin
    spread = torch.linspace(0, 1, 16 * 27).view(1, 16, 27)  # equal counts in all 16 bins
    assert patch_entropy(spread)[0] == pytest.approx(math.log(16), rel=1e-6)
    assert patch_entropy(torch.zeros(1, 4, 3))[0] == 0
    h_flat, h_spread = patch_entropy(flat), patch_entropy(spread)
    assert h_flat[0] < 0.1
    assert choose_eta(h_spread, h_flat)[0] == 1.0   # image patches richer than rain patches → image looser
    assert choose_eta(h_flat, h_spread)[0] == -1.0  # swapped order → η flips
    assert choose_eta(h_flat, h_spread, "+1")[0] == 1.0 and choose_eta(h_spread, h_flat, "-1")[0] == -1.0
    with pytest.raises(ValueError, match="η mode"):
        choose_eta(h_flat, h_spread, "sometimes")


def test_dispersion_and_asymmetric_margin_by_hand():
    tight = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    loose = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert dispersion(tight)[0] == pytest.approx(0.0, abs=1e-7)
    d_loose = 1 - math.cos(math.pi / 4)
    assert dispersion(loose)[0] == pytest.approx(d_loose, rel=1e-6)
    plus, minus = torch.tensor([1.0]), torch.tensor([-1.0])
    # η=+1: image (loose) is already looser than rain (tight) by d_loose > margin → no loss
    assert asymmetric_loss(loose, tight, plus, margin=0.1) == 0
    # η=−1 asks the opposite: loss = margin + d_loose
    assert asymmetric_loss(loose, tight, minus, margin=0.1) == pytest.approx(0.1 + d_loose, rel=1e-6)


def _tiny(seed=0):
    torch.manual_seed(seed)
    dec = Decomposer(GeneratorConfig(width=8, blocks=2))
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return dec, PatchDiscriminator(ndf=8)


def test_layer_contrast_uses_true_nonlocal_positives_and_trains_heads_not_keys():
    dec, d = _tiny()
    lc = LayerContrast(d, layers=(0, 1), n_query=8, n_pos=3, n_neg=20)
    o = torch.rand(2, 3, 48, 48)
    b, r = dec(o)
    picks = []
    orig = lc._pick
    lc._pick = lambda desc, q_idx, w, k, rand: picks.append((desc, q_idx, w, k)) or orig(desc, q_idx, w, k, rand)
    loss, extras = lc(d, b, r, StepRandom(0, 0, 2))
    desc, q_idx, w, k = picks[0]  # B patches of layer 0, the same search done independently
    assert torch.equal(desc, patch_descriptors(b.detach(), (24, 24)))
    expect = nearest(gather_locations(desc, q_idx), desc, k, q_idx=q_idx, width=w, radius=1)
    assert torch.equal(orig(desc, q_idx, w, k, StepRandom(0, 0, 2)), expect)
    assert extras["z_b"].shape == (2, 16, 256)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lc.heads.parameters())
    assert all(p.grad is None for p in lc.key_disc.parameters()) and all(p.grad is None for p in lc.key_heads.parameters())
    assert dec.g_b.tail.weight.grad.abs().sum() > 0 and dec.g_r.tail.weight.grad.abs().sum() > 0


def test_momentum_update_is_moco():
    _, d = _tiny()
    lc = LayerContrast(d, layers=(0,), momentum=0.9)
    before = lc.key_disc.blocks[0][0].weight.clone()
    with torch.no_grad():
        d.blocks[0][0].weight.add_(1.0)
    lc.momentum_update(d)
    assert torch.allclose(lc.key_disc.blocks[0][0].weight, 0.9 * before + 0.1 * d.blocks[0][0].weight)


@pytest.mark.parametrize("mode", ["most", "least", "random"])
def test_location_negatives_follow_the_mode(mode):
    loc_c = LocationContrast([8, 8, 8], layers=(0,), n_patches=16, n_neg=4, negatives=mode, radius=0)
    g = torch.Generator().manual_seed(3)
    desc = torch.rand(1, 100, 5, generator=g)
    loc = torch.randperm(100, generator=g)[:16].view(1, 16)
    neg = loc_c._negatives(desc, loc, 10, 4, StepRandom(0, 0, 1))
    own = torch.arange(16).view(1, 16, 1)
    assert not bool((neg == own).any())  # never the query itself
    if mode != "random":
        pool = gather_locations(desc, loc)
        d = torch.cdist(pool, pool)
        d.diagonal(dim1=1, dim2=2).fill_(float("-inf") if mode == "least" else float("inf"))
        assert torch.equal(neg, d.topk(4, dim=-1, largest=mode == "least").indices)


def test_location_contrast_prefers_b_that_keeps_o_content():
    dec, _ = _tiny()
    loc_c = LocationContrast(dec.g_b.feature_channels, layers=(0, 2), n_patches=32, n_neg=8)
    o = torch.rand(1, 3, 32, 32)
    same = loc_c(dec.g_b, o, o, StepRandom(0, 0, 1))
    other = loc_c(dec.g_b, o, torch.rand(1, 3, 32, 32), StepRandom(0, 0, 1))
    assert float(same.detach()) < float(other.detach())


def test_objective_weights_switches_and_names():
    dec, d = _tiny()
    o = torch.rand(2, 3, 48, 48)
    obj = Objective(LossConfig(n_query=8, n_neg=20, loc_patches=32, loc_neg=8), dec.g_b, d)
    total, terms, b, r = obj.generator_loss(dec.g_b, dec.g_r, d, o, StepRandom(0, 0, 2))
    assert set(terms) >= {"adv", "layer", "self", "location", "asym", "sparse"}
    weighted = terms["adv"] + 0.1 * terms["layer"] + terms["self"] + terms["location"] + terms["asym"] + 0.01 * terms["sparse"]
    assert float(total.detach()) == pytest.approx(float(weighted.detach()), rel=1e-6)
    nlcl = Objective(LossConfig("nlcl", n_query=8, n_neg=20, location=False), dec.g_b, d)
    _, terms, _, _ = nlcl.generator_loss(dec.g_b, dec.g_r, d, o, StepRandom(0, 0, 2))
    assert "asym" not in terms and "location" not in terms and "layer" in terms
    with pytest.raises(ValueError, match="semantic-encoder"):
        LossConfig("cclgan")  # CCLGAN's intra-cycle contrast has no encoder to work with
    with pytest.raises(ValueError, match="unknown objective"):
        LossConfig("cyclegan")
    only_adv = LossConfig(layer=False, asym=False, location=False, self_consistency=False, sparse=False)
    assert Objective(only_adv, dec.g_b, d).generator_parameters() == []
