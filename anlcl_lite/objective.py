"""The objectives `derain-train anlcl --objective …` trains the light generator with, and their shared configuration.

ANLCL (all terms) and NLCL (the CVPR'22 version: no asymmetric term) decompose O = B + R with G_B and G_R:
    L_G = L_adv(B) + λ·L_layer + δ·L_self + μ·L_location + σ·L_asym + γ·‖R‖₁
    λ = 0.1, δ = 1, μ = 1, σ = 1, γ = 0.01          (our reading of the paper's weights; every term switchable)
    L_D = LSGAN on clean photos (real, unpaired with the rainy inputs) vs B (fake).
The peers DCD-GAN (dcdgan.py) and CCLGAN (cclgan.py) are translation objectives: G_B (rainy → clean) and G_O
(clean → rainy) with a discriminator per domain. All four train the same light G_B, the only part used at inference.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .losses import (LayerContrast, LocationContrast, asymmetric_loss, choose_eta, lsgan_discriminator,
                     lsgan_generator, patch_entropy, self_consistency, sparsity)
from .sampling import StepRandom

OBJECTIVES = ("anlcl", "nlcl", "dcdgan", "cclgan")
TRANSLATION = ("dcdgan", "cclgan")  # a second generator G_O (clean → rainy) and a rainy-domain discriminator
TERMS_OF = {
    "anlcl": ("adv", "layer", "self", "location", "asym", "sparse"),
    "nlcl": ("adv", "layer", "self", "location", "sparse"),
    "dcdgan": ("adv", "nce", "idt", "cyc", "freq"),
    "cclgan": ("adv", "location", "idt", "intra", "inter"),
}
TERMS = tuple(dict.fromkeys(t for terms in TERMS_OF.values() for t in terms))
SWITCH_FIELD = {t: ("self_consistency" if t == "self" else t) for t in TERMS}


@dataclass
class LossConfig:
    objective: str = "anlcl"
    # switches (off = the term is neither computed nor added)
    adv: bool = True
    layer: bool = True
    self_consistency: bool = True
    location: bool = True
    asym: bool = True
    sparse: bool = True
    # weights (paper defaults)
    lam: float = 0.1      # layer contrast
    delta: float = 1.0    # self-consistency
    mu: float = 1.0       # location contrast
    sigma: float = 1.0    # asymmetric contrast
    gamma: float = 0.01   # L1 sparsity of R
    # layer contrast
    disc_layers: tuple = (0, 1, 2)
    n_query: int = 64
    n_pos: int = 8        # N_B
    n_neg: int = 256      # N_R
    tau: float = 0.07
    momentum: float = 0.99
    sampling: str = "nonlocal"
    # location contrast
    gen_layers: tuple = (0, 2, 4)
    loc_patches: int = 256
    loc_neg: int = 64
    loc_negatives: str = "most"
    # asymmetric contrast
    eta: str = "entropy"
    margin: float = 0.1
    # identity/dry anchor on the unpaired clean photos: anchor·(L1(G_B(C), C) + ‖G_R(C)‖₁); 0 = off
    anchor: float = 0.0
    adv_weight: float = 1.0  # weight of the adversarial term on B (anlcl/nlcl)
    # translation objectives (DCD-GAN, CCLGAN): switches and weights (the released code's defaults)
    nce: bool = True      # DCD-GAN dual contrast
    idt: bool = True      # identity L1: G_B(C) = C, G_O(O) = O
    cyc: bool = True      # DCD-GAN per-channel colour cycle-consistency
    freq: bool = True     # DCD-GAN frequency loss on the cycle
    intra: bool = True    # CCLGAN intra-cycle contrast (frozen semantic encoder)
    inter: bool = True    # CCLGAN inter-cycle contrast (discriminator encoders)
    w_nce: float = 2.0    # PatchNCE terms of both peers (DCD's dual contrast, CCLGAN's location contrast)
    w_idt: float = 1.0
    w_cyc: float = 1.0
    w_freq: float = 1.0
    w_intra: float = 1.0
    w_inter: float = 0.01
    external: bool = True  # DCD-GAN: negatives from the batch's other images too
    inter_layers: tuple = (0, 1)
    semantic_encoder: str | None = None  # CCLGAN: TorchScript image encoder file (semantic.py)
    semantic_size: int = 224

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.objective == "nlcl":
            self.asym = False
        if self.anchor < 0:
            raise ValueError(f"the anchor weight must be ≥ 0, got {self.anchor}")
        if self.anchor > 0 and self.objective in TRANSLATION:
            raise ValueError("the identity/dry anchor (--anchor) is for the decomposition objectives anlcl/nlcl; "
                             "dcdgan and cclgan have their own identity term (--weight idt=W)")
        if self.objective == "cclgan" and self.intra and not self.semantic_encoder:
            raise ValueError("the cclgan objective needs a frozen semantic image encoder for its intra-cycle contrast "
                             "(CLIP in the paper; nothing can be downloaded here): pass --semantic-encoder FILE, a "
                             "TorchScript module (see docs/anlcl.md), or switch the term off with --off intra")
        self.disc_layers, self.gen_layers = tuple(self.disc_layers), tuple(self.gen_layers)
        self.inter_layers = tuple(self.inter_layers)

    @property
    def translation(self) -> bool:
        return self.objective in TRANSLATION

    @property
    def terms(self) -> tuple[str, ...]:
        return TERMS_OF[self.objective]

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("disc_layers", "gen_layers", "inter_layers"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LossConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Objective(nn.Module):
    """ANLCL / NLCL: holds the trainable parts of the losses (contrast heads, momentum encoder), computes L_G and L_D.

    `step_loss`, `disc_loss` and `after_step` are the interface every objective offers the training loop."""

    translation = False

    def __init__(self, cfg: LossConfig, g_b: nn.Module, disc: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.layer = LayerContrast(disc, cfg.disc_layers, cfg.n_query, cfg.n_pos, cfg.n_neg, cfg.tau, cfg.momentum,
                                   cfg.sampling) if (cfg.layer or cfg.asym) else None
        self.location = LocationContrast(g_b.feature_channels, cfg.gen_layers, cfg.loc_patches, cfg.loc_neg,
                                         0.07, cfg.loc_negatives) if cfg.location else None

    def generator_parameters(self):
        params = []
        if self.layer is not None:
            params += list(self.layer.query_parameters())
        if self.location is not None:
            params += list(self.location.heads.parameters())
        return params

    def generator_loss(self, g_b, g_r, disc, o: torch.Tensor, rand: StepRandom):
        """(total, {term: value}, B, R)."""
        cfg = self.cfg
        b, r = g_b(o), g_r(o)
        terms: dict[str, torch.Tensor] = {}
        if cfg.adv:
            terms["adv"] = lsgan_generator(disc(b))
        if self.layer is not None:
            layer_loss, extras = self.layer(disc, b, r, rand)
            if cfg.layer:
                terms["layer"] = layer_loss
            if cfg.asym:
                eta = choose_eta(patch_entropy(extras["patches_b"]), patch_entropy(extras["patches_r"]), cfg.eta)
                terms["asym"] = asymmetric_loss(extras["z_b"], extras["z_r"], eta, cfg.margin)
                terms["eta"] = eta.mean().detach()
        if cfg.self_consistency:
            terms["self"] = self_consistency(b, r, o)
        if self.location is not None:
            terms["location"] = self.location(g_b, o, b, rand)
        if cfg.sparse:
            terms["sparse"] = sparsity(r)
        weights = {"adv": cfg.adv_weight, "layer": cfg.lam, "self": cfg.delta, "location": cfg.mu, "asym": cfg.sigma,
                   "sparse": cfg.gamma}
        return weighted_total(terms, weights), terms, b, r

    @staticmethod
    def discriminator_loss(disc, clean: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lsgan_discriminator(disc(clean), disc(b.detach()))

    def step_loss(self, models, rainy: torch.Tensor, clean: torch.Tensor, rand: StepRandom):
        """(L_G, terms, pictures for the sample grid, what disc_loss needs)."""
        total, terms, b, r = self.generator_loss(models.g_b, models.g_r, models.d, rainy, rand)
        if self.cfg.anchor > 0:
            terms["anchor"] = anchor_loss(models.g_b, models.g_r, clean)
            total = total + self.cfg.anchor * terms["anchor"]
        # diagnostics (not in the total): how much of the input the rain branch takes
        terms["r_abs"] = r.detach().float().abs().mean()
        terms["r_cover"] = (r.detach().float().abs().amax(1) > RAIN_PIXEL).float().mean()
        return total, terms, {"O": rainy, "B": b, "|R| x3": r.abs() * 3}, {"b": b}

    def disc_loss(self, models, rainy: torch.Tensor, clean: torch.Tensor, cache: dict):
        d_real, d_fake = models.d(clean), models.d(cache["b"].detach())
        loss = lsgan_discriminator(d_real, d_fake)
        # D/G balance: mean D output on clean photos (→ 1 when D wins) and on B (→ 0 when D wins, 1 when G fools it)
        return loss, {"d": loss, "d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean()}

    def after_step(self, models) -> None:
        if self.layer is not None:
            self.layer.momentum_update(models.d)


RAIN_PIXEL = 2.0 / 255.0  # |R| above this (any channel) counts as a rain pixel in the r_cover diagnostic


def anchor_loss(g_b: nn.Module, g_r: nn.Module, clean: torch.Tensor) -> torch.Tensor:
    """Identity / dry-frame anchor on unpaired clean photos: a frame without rain must pass G_B unchanged and give
    G_R nothing, L1(G_B(C), C) + mean |G_R(C)|. Uses only the discriminator's clean domain (no pair of any rainy
    image), so the stage stays unsupervised for the rainy data."""
    return (g_b(clean).float() - clean).abs().mean() + g_r(clean).float().abs().mean()


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    total = sum(weights[k] * v for k, v in terms.items() if k in weights)
    if not torch.is_tensor(total):
        raise ValueError("every loss term is switched off")
    return total


def translation_disc_loss(models, o: torch.Tensor, c: torch.Tensor, cache: dict):
    """LSGAN for both domains' discriminators: D_B tells clean photos from G_B(O), D_O rainy ones from G_O(C)."""
    d_b = lsgan_discriminator(models.d(c), models.d(cache["b"].detach()))
    d_o = lsgan_discriminator(models.d_o(o), models.d_o(cache["fake_o"].detach()))
    return d_b + d_o, {"d": d_b, "d_o": d_o}
