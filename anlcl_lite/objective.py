"""The full objectives on one generator pair: ANLCL (all terms) and NLCL (the CVPR'22 version: no asymmetric term).

Generator loss (our reading of the paper's weights; every term switchable):
    L_G = L_adv(B) + λ·L_layer + δ·L_self + μ·L_location + σ·L_asym + γ·‖R‖₁
    λ = 0.1, δ = 1, μ = 1, σ = 1, γ = 0.01
Discriminator loss: LSGAN on clean photos (real, unpaired with the rainy inputs) vs B (fake).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .losses import (LayerContrast, LocationContrast, asymmetric_loss, choose_eta, lsgan_discriminator,
                     lsgan_generator, patch_entropy, self_consistency, sparsity)
from .sampling import StepRandom

OBJECTIVES = ("anlcl", "nlcl", "dcdgan", "cclgan")
IMPLEMENTED = ("anlcl", "nlcl")
TERMS = ("adv", "layer", "self", "location", "asym", "sparse")


class NotImplementedObjective(ValueError):
    """An objective named by the issue that this release does not implement yet."""


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

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.objective not in IMPLEMENTED:
            raise NotImplementedObjective(
                f"objective {self.objective!r} is not implemented yet in this release (implemented: {', '.join(IMPLEMENTED)})")
        if self.objective == "nlcl":
            self.asym = False
        self.disc_layers, self.gen_layers = tuple(self.disc_layers), tuple(self.gen_layers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["disc_layers"], d["gen_layers"] = list(self.disc_layers), list(self.gen_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LossConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Objective(nn.Module):
    """Holds the trainable parts of the losses (contrast heads, momentum encoder) and computes L_G and L_D."""

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
        weights = {"adv": 1.0, "layer": cfg.lam, "self": cfg.delta, "location": cfg.mu, "asym": cfg.sigma,
                   "sparse": cfg.gamma}
        total = sum(weights[k] * v for k, v in terms.items() if k in weights)
        if not torch.is_tensor(total):
            raise ValueError("every loss term is switched off")
        return total, terms, b, r

    @staticmethod
    def discriminator_loss(disc, clean: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lsgan_discriminator(disc(clean), disc(b.detach()))
