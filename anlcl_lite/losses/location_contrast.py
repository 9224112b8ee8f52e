"""Location contrast (ANLCL; PatchNCE of CUT, Park et al. 2020): B must keep the content of O at the same place.

With the generator's own encoder (G_B.encode: head and residual-block features) and a 2-layer MLP head per layer,
N = `n_patches` (256) locations are sampled; for each, the query is the embedding of B there, the positive the
embedding of O at the same location, and the negatives `n_neg` embeddings of O at other sampled locations, chosen
by reverse non-local sampling in image space (O's patches): "most" = the most similar (hard negatives), "least" =
the least similar, "random" = uniform (with n_neg = N − 1 all three equal CUT's PatchNCE). τ = 0.07.
"""
from __future__ import annotations

import torch
from torch import nn

from ..heads import flat_locations, make_heads
from ..sampling import NEGATIVE_MODES, StepRandom, gather_locations, patch_descriptors
from .nce import gathered_logits, nce_from_logits


class LocationContrast(nn.Module):
    def __init__(self, channels: list[int], layers: tuple[int, ...] = (0, 2, 4), n_patches: int = 256,
                 n_neg: int = 64, tau: float = 0.07, negatives: str = "most", radius: int = 1, patch: int = 3):
        super().__init__()
        if negatives not in NEGATIVE_MODES:
            raise ValueError(f"unknown negative mode {negatives!r}; choose from {', '.join(NEGATIVE_MODES)}")
        self.layers = tuple(i for i in layers if i < len(channels)) or (len(channels) - 1,)
        self.n_patches, self.n_neg, self.tau, self.negatives = n_patches, n_neg, tau, negatives
        self.radius, self.patch = radius, patch
        self.heads = make_heads([channels[i] for i in self.layers])

    def _negatives(self, desc: torch.Tensor, loc: torch.Tensor, width: int, k: int, rand: StepRandom) -> torch.Tensor:
        """N×M×k indices into the M sampled locations (never the query itself)."""
        n, m = loc.shape
        if self.negatives == "random":
            # uniform over the other M−1 sampled locations: draw from M−1 and skip the query's own slot
            draw = torch.rand(rand.global_batch, m, m - 1, generator=rand.gen)[rand.offset : rand.offset + n]
            pick = draw.topk(k, dim=-1).indices.to(loc.device)
            own = torch.arange(m, device=loc.device).view(1, m, 1)
            return pick + (pick >= own).long()
        pool = gather_locations(desc, loc)  # N×M×D, the sampled locations' patches
        # exclude the query itself and sampled locations overlapping it (radius in the feature grid)
        d = torch.cdist(pool.float(), pool.float())
        ly, lx = loc // width, loc % width
        near = ((ly[:, :, None] - ly[:, None, :]).abs() <= self.radius) & ((lx[:, :, None] - lx[:, None, :]).abs() <= self.radius)
        largest = self.negatives == "least"
        d = d.masked_fill(near, float("-inf") if largest else float("inf"))
        return d.topk(k, dim=-1, largest=largest).indices

    def forward(self, g_b: nn.Module, o: torch.Tensor, b: torch.Tensor, rand: StepRandom) -> torch.Tensor:
        feats_o, feats_b = g_b.encode(o), g_b.encode(b)
        total = 0.0
        for j, i in enumerate(self.layers):
            fo, fb = feats_o[i], feats_b[i]
            h, w = fo.shape[-2:]
            m = min(self.n_patches, h * w)
            k = min(self.n_neg, m - 1 - (0 if self.negatives == "random" else (2 * self.radius + 1) ** 2 - 1))
            if k < 1:
                raise ValueError(f"a {o.shape[-1]}×{o.shape[-2]} crop is too small for the location contrast")
            loc = rand.choice(h * w, m)
            z_o = self.heads[j](gather_locations(flat_locations(fo), loc))  # N×M×256
            z_b = self.heads[j](gather_locations(flat_locations(fb), loc))
            desc = patch_descriptors(o.detach(), (h, w), self.patch)
            neg_idx = self._negatives(desc, loc, w, k, rand)  # N×M×k into the pool
            s_pos = (z_b * z_o).sum(-1, keepdim=True) / self.tau  # same location in O
            total = total + nce_from_logits(s_pos, gathered_logits(z_b, z_o, neg_idx, self.tau))
        return total / len(self.layers)
