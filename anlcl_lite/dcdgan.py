"""DCD-GAN (Chen, Pan et al. CVPR'22, "Unpaired Deep Image Deraining Using Dual Contrastive Learning") on the light
generator: bidirectional translation with G_B (rainy → clean), G_O (clean → rainy), a PatchGAN per domain.

    L_G = ½[L_adv(G_B(O); D_B) + L_adv(G_O(C); D_O)]                       adversarial, LSGAN
        + λ_NCE · L_dual                                                  dual contrast (losses/dual_contrast.py)
        + λ_idt · ½[‖G_B(C) − C‖₁ + ‖G_O(O) − O‖₁]                        identity
        + λ_cyc · ½[L_cyc(G_O(G_B(O)), O) + L_cyc(G_B(G_O(C)), C)]         per-channel colour cycle (losses/cycle.py)
        + λ_freq · ½[L_freq(G_O(G_B(O)), O) + L_freq(G_B(G_O(C)), C)]      frequency loss on the cycles
    λ_NCE = 2, λ_idt = λ_cyc = λ_freq = 1 (the released code's option defaults)
    L_D = LSGAN(D_B: C real vs G_B(O)) + LSGAN(D_O: O real vs G_O(C))

The released code computes its colour and frequency losses but never adds them to L_G; here every term above is in
the loss unless switched off (`--off nce|idt|cyc|freq|adv`). Needs unpaired clean photos (`--clean`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses.adversarial import lsgan_generator
from .losses.cycle import colour_cycle, frequency_loss
from .losses.dual_contrast import DualContrast
from .objective import LossConfig, translation_disc_loss, weighted_total
from .sampling import StepRandom


class DcdganObjective(nn.Module):
    translation = True

    def __init__(self, cfg: LossConfig, g_b: nn.Module, g_o: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.dual = DualContrast(g_b.feature_channels, g_o.feature_channels, cfg.gen_layers, cfg.loc_patches, 0.07,
                                 cfg.external) if cfg.nce else None

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.dual.parameters()) if self.dual is not None else []

    def step_loss(self, models, o: torch.Tensor, c: torch.Tensor, rand: StepRandom):
        cfg, g_b, g_o = self.cfg, models.g_b, models.g_o
        b, fake_o = g_b(o), g_o(c)
        terms: dict[str, torch.Tensor] = {}
        if cfg.adv:
            terms["adv"] = 0.5 * (lsgan_generator(models.d(b)) + lsgan_generator(models.d_o(fake_o)))
        if self.dual is not None:
            terms["nce"] = self.dual(g_b, g_o, o, b, c, fake_o, rand)
        if cfg.idt:
            terms["idt"] = 0.5 * (F.l1_loss(g_b(c).float(), c.float()) + F.l1_loss(g_o(o).float(), o.float()))
        if cfg.cyc or cfg.freq:
            rec_o, rec_c = g_o(b), g_b(fake_o)
            if cfg.cyc:
                terms["cyc"] = 0.5 * (colour_cycle(rec_o, o) + colour_cycle(rec_c, c))
            if cfg.freq:
                terms["freq"] = 0.5 * (frequency_loss(rec_o, o) + frequency_loss(rec_c, c))
        weights = {"adv": 1.0, "nce": cfg.w_nce, "idt": cfg.w_idt, "cyc": cfg.w_cyc, "freq": cfg.w_freq}
        pictures = {"O": o, "B = G_B(O)": b, "C (unpaired)": c, "G_O(C)": fake_o}
        return weighted_total(terms, weights), terms, pictures, {"b": b, "fake_o": fake_o}

    def disc_loss(self, models, o: torch.Tensor, c: torch.Tensor, cache: dict):
        return translation_disc_loss(models, o, c, cache)

    def after_step(self, models) -> None:
        pass

