"""Layer contrast with non-local sampling (NLCL eq. 3-5, ANLCL Sec. 3): the discriminator is the encoder.

For each chosen discriminator block l and each of `n_query` query locations (same locations in B and R):
  image query  z = h_l(D_l(B))[q]: positives = keys of the `n_pos` (N_B = 8) B patches most similar to B's patch
               at q (block matching in image space, overlapping neighbours excluded); negatives = keys of the
               `n_neg` (N_R = 256) R patches most similar to R's patch at q;
  rain query   z = h_l(D_l(R))[q]: positives = the n_pos most similar R patches; negatives = the n_neg most similar
               B patches ("and vice versa").
Keys come from a momentum copy (MoCo, m = 0.99) of the discriminator and heads, updated after each step with
`momentum_update`; they carry no gradient. Each query's loss is the multi-positive InfoNCE of `nce.py`.
`sampling="random"` draws positives and negatives uniformly instead (the baseline of the benchmark and ablations).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..heads import flat_locations, make_heads
from ..sampling import SAMPLINGS, StepRandom, gather_locations, nearest, patch_descriptors
from .nce import gathered_logits, nce_from_logits


class LayerContrast(nn.Module):
    def __init__(self, disc: nn.Module, layers: tuple[int, ...] = (0, 1, 2), n_query: int = 64, n_pos: int = 8,
                 n_neg: int = 256, tau: float = 0.07, momentum: float = 0.99, sampling: str = "nonlocal",
                 radius: int = 1, patch: int = 3):
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose from {', '.join(SAMPLINGS)}")
        self.layers, self.n_query, self.n_pos, self.n_neg = tuple(layers), n_query, n_pos, n_neg
        self.tau, self.momentum, self.sampling, self.radius, self.patch = tau, momentum, sampling, radius, patch
        self.heads = make_heads([disc.channels[i] for i in self.layers])
        self.key_disc = copy.deepcopy(disc).requires_grad_(False)
        self.key_heads = copy.deepcopy(self.heads).requires_grad_(False)

    def query_parameters(self):
        """Parameters the generator's optimiser must step (the online heads)."""
        return self.heads.parameters()

    @torch.no_grad()
    def momentum_update(self, disc: nn.Module) -> None:
        """θ_key ← m·θ_key + (1 − m)·θ (MoCo eq. 2), for the discriminator copy and the heads."""
        m = self.momentum
        online = list(disc.parameters()) + list(self.heads.parameters())
        keys = list(self.key_disc.parameters()) + list(self.key_heads.parameters())
        for pk, p in zip(keys, online):
            pk.mul_(m).add_(p.detach(), alpha=1.0 - m)

    def _pick(self, desc: torch.Tensor, q_idx: torch.Tensor, width: int, k: int, rand: StepRandom) -> torch.Tensor:
        if self.sampling == "random":
            return rand.randint(desc.shape[1], (q_idx.shape[1], k))
        query = gather_locations(desc, q_idx)
        return nearest(query, desc, k, q_idx=q_idx, width=width, radius=self.radius)

    def forward(self, disc: nn.Module, b: torch.Tensor, r: torch.Tensor, rand: StepRandom) -> tuple[torch.Tensor, dict]:
        """(loss averaged over layers and both query directions, extras for the asymmetric term:
        z_b, z_r (N×M×256 query embeddings over all layers) and the image-space patches at the queries)."""
        feats_b = disc.features(b, self.layers)
        feats_r = disc.features(r, self.layers)
        with torch.no_grad():
            keys_b = self.key_disc.features(b.detach(), self.layers)
            keys_r = self.key_disc.features(r.detach(), self.layers)
        total, zs_b, zs_r, ps_b, ps_r = 0.0, [], [], [], []
        for i, (fb, fr, kb, kr) in enumerate(zip(feats_b, feats_r, keys_b, keys_r)):
            h, w = fb.shape[-2:]
            length = h * w
            excluded = (2 * self.radius + 1) ** 2
            k = min(max(self.n_pos, self.n_neg), length - excluded)
            n_pos = min(self.n_pos, k)
            if k < 1:
                raise ValueError(f"a {b.shape[-1]}×{b.shape[-2]} crop is too small for layer contrast at block {self.layers[i]}")
            q_idx = rand.choice(length, min(self.n_query, length))
            desc_b = patch_descriptors(b.detach(), (h, w), self.patch)
            desc_r = patch_descriptors(r.detach(), (h, w), self.patch)
            near_b = self._pick(desc_b, q_idx, w, k, rand)  # B patches similar to B at q
            near_r = self._pick(desc_r, q_idx, w, k, rand)  # R patches similar to R at q
            z_b = self.heads[i](gather_locations(flat_locations(fb), q_idx))
            z_r = self.heads[i](gather_locations(flat_locations(fr), q_idx))
            with torch.no_grad():
                e_b = self.key_heads[i](flat_locations(kb))  # keys at every location, then gathered
                e_r = self.key_heads[i](flat_locations(kr))
            # image queries: B positives, R negatives; rain queries: R positives, B negatives
            loss_b = nce_from_logits(gathered_logits(z_b, e_b, near_b[..., :n_pos], self.tau),
                                     gathered_logits(z_b, e_r, near_r, self.tau))
            loss_r = nce_from_logits(gathered_logits(z_r, e_r, near_r[..., :n_pos], self.tau),
                                     gathered_logits(z_r, e_b, near_b, self.tau))
            total = total + 0.5 * (loss_b + loss_r)
            zs_b.append(z_b)
            zs_r.append(z_r)
            ps_b.append(gather_locations(desc_b, q_idx))
            ps_r.append(gather_locations(desc_r, q_idx))
        extras = {"z_b": torch.cat(zs_b, 1), "z_r": torch.cat(zs_r, 1),
                  "patches_b": torch.cat(ps_b, 1), "patches_r": torch.cat(ps_r, 1)}
        return total / len(feats_b), extras
