"""CCLGAN ("Cycle Contrastive Adversarial Learning for Unsupervised Image Deraining") on the light generator:
a cycle of G_B (rainy → clean) and G_O (clean → rainy) with a PatchGAN per domain, and three contrasts.

With O a rainy crop, C an unpaired clean crop, B = G_B(O), Ô = G_O(B), Ř = G_O(C), Ĉ = G_B(Ř):

    L_G = ½[L_adv(B; D_B) + L_adv(Ř; D_O)]
        + λ_NCE · ½[PatchNCE(O, B; G_B's encoder) + PatchNCE(C, Ř; G_O's encoder)]     location contrast
        + λ_idt · ½[‖G_B(C) − C‖₁ + ‖G_O(O) − O‖₁]
        + λ_intra · ½[ρ(e(Ô); +e(O); −e(C), −0.1·e(B)) + ρ(e(Ĉ); +e(C); −e(O), −0.1·e(Ř))]   intra-cycle contrast
        + λ_inter · inter-cycle contrast (below)
    λ_NCE = 2, λ_idt = 1, λ_intra = 1, λ_inter = 0.01 (the released code: NCE ×2, intra ½(c₁+c₂), inter 0.005·(c₁+c₂))

ρ(a; +p; −n) is the (bounded) distance-ratio contrast of losses/ratio_contrast.py; e is a frozen semantic image encoder (CLIP
in the paper, a user-supplied TorchScript file here: semantic.py). Inter-cycle: in each discriminator's feature
space (blocks `inter_layers`, global-average pooled, since the images compared are unpaired) the outputs of one
generator from both cycles are pulled to the real photos of its domain and pushed from the other domain:
    D_B: anchors B and Ĉ, positives C (and each other, weight 0.2), negative O;
    D_O: anchors Ř and Ô, positives O (and each other, weight 0.2), negative C.
The location contrast is ANLCL's (losses/location_contrast.py), so its negatives can be random, as in CUT/CCLGAN, or
chosen by reverse non-local sampling (`--loc-negatives`). The paper's late-stage SAM consistency term is not included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses.adversarial import lsgan_generator
from .losses.location_contrast import LocationContrast
from .losses.ratio_contrast import contrast_ratio
from .objective import LossConfig, translation_disc_loss, weighted_total
from .sampling import StepRandom
from .semantic import SemanticEncoder


def pooled_features(disc: nn.Module, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
    return [f.mean(dim=(2, 3)) for f in disc.features(x, layers)]


class CclganObjective(nn.Module):
    translation = True

    def __init__(self, cfg: LossConfig, g_b: nn.Module, g_o: nn.Module, semantic: SemanticEncoder | None):
        super().__init__()
        self.cfg = cfg
        if cfg.intra and semantic is None:
            raise ValueError("the intra-cycle contrast needs a semantic encoder")
        self._semantic = [semantic]  # frozen and external: not a submodule, so never in checkpoints or optimisers
        make = lambda g: LocationContrast(g.feature_channels, cfg.gen_layers, cfg.loc_patches, cfg.loc_neg, 0.07,
                                          cfg.loc_negatives)
        self.location_b = make(g_b) if cfg.location else None
        self.location_o = make(g_o) if cfg.location else None

    @property
    def semantic(self) -> SemanticEncoder | None:
        return self._semantic[0]

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the frozen encoder along
        super()._apply(fn, *args, **kwargs)
        if self.semantic is not None:
            self.semantic._apply(fn)
        return self

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.location_b, self.location_o) if m is not None for p in m.parameters()]

    def intra_cycle(self, o, c, b, rec_o, fake_o, rec_c) -> torch.Tensor:
        e = self.semantic
        eo, ec, eb, erec_o, efake_o, erec_c = (e(x) for x in (o, c, b, rec_o, fake_o, rec_c))
        rain_cycle = contrast_ratio(erec_o, [(eo, 1.0)], [(ec, 1.0), (eb, 0.1)])
        clean_cycle = contrast_ratio(erec_c, [(ec, 1.0)], [(eo, 1.0), (efake_o, 0.1)])
        return 0.5 * (rain_cycle + clean_cycle)

    def inter_cycle(self, models, o, c, b, rec_o, fake_o, rec_c) -> torch.Tensor:
        layers = self.cfg.inter_layers
        total = 0.0
        for disc, (x1, x2), real, other in ((models.d, (b, rec_c), c, o), (models.d_o, (fake_o, rec_o), o, c)):
            f1, f2, fr, fn = (pooled_features(disc, x, layers) for x in (x1, x2, real, other))
            for a1, a2, p, n in zip(f1, f2, fr, fn):
                total = total + contrast_ratio(a1, [(p, 1.0), (a2, 0.2)], [(n, 1.0)])
                total = total + contrast_ratio(a2, [(p, 1.0), (a1, 0.2)], [(n, 1.0)])
        return total / (4 * len(layers))

    def step_loss(self, models, o: torch.Tensor, c: torch.Tensor, rand: StepRandom):
        cfg, g_b, g_o = self.cfg, models.g_b, models.g_o
        b, fake_o = g_b(o), g_o(c)
        terms: dict[str, torch.Tensor] = {}
        if cfg.adv:
            terms["adv"] = 0.5 * (lsgan_generator(models.d(b)) + lsgan_generator(models.d_o(fake_o)))
        if self.location_b is not None:
            terms["location"] = 0.5 * (self.location_b(g_b, o, b, rand) + self.location_o(g_o, c, fake_o, rand))
        if cfg.idt:
            terms["idt"] = 0.5 * (F.l1_loss(g_b(c).float(), c.float()) + F.l1_loss(g_o(o).float(), o.float()))
        if cfg.intra or cfg.inter:
            rec_o, rec_c = g_o(b), g_b(fake_o)
            if cfg.intra:
                terms["intra"] = self.intra_cycle(o, c, b, rec_o, fake_o, rec_c)
            if cfg.inter:
                terms["inter"] = self.inter_cycle(models, o, c, b, rec_o, fake_o, rec_c)
        weights = {"adv": 1.0, "location": cfg.w_nce, "idt": cfg.w_idt, "intra": cfg.w_intra, "inter": cfg.w_inter}
        pictures = {"O": o, "B = G_B(O)": b, "C (unpaired)": c, "G_O(C)": fake_o}
        return weighted_total(terms, weights), terms, pictures, {"b": b, "fake_o": fake_o}

    def disc_loss(self, models, o: torch.Tensor, c: torch.Tensor, cache: dict):
        return translation_disc_loss(models, o, c, cache)

    def after_step(self, models) -> None:
        pass
