"""DCD-GAN's dual contrast (Chen et al. CVPR'22, "Unpaired Deep Image Deraining Using Dual Contrastive Learning").

PatchNCE (CUT, Park et al. 2020) in both translation directions, with two encoders crossed: for rainy → clean the keys
are G_B's features of the rainy input O and the queries are G_O's features of the derained G_B(O) at the same
locations; for clean → rainy the roles swap. Each generator's features have their own 2-layer MLP heads (256 units),
so the heads stay tied to one encoder whichever direction they serve (as the released code pairs netF1/netF2).

Negatives of a query (the key at its own location is the positive):
- internal: the keys at the other sampled locations of the same image;
- external (`external=True`): also every key sampled from the other images of the batch — the *global* batch under
  torchrun (keys are gathered across processes, differentiably, so data-parallel training optimises the same loss).
With one image per batch the two coincide. τ = 0.07, N = 256 locations per layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_batch
from ..heads import flat_locations, make_heads
from ..sampling import StepRandom, gather_locations


def dual_patch_nce(q: torch.Tensor, k: torch.Tensor, tau: float, external: bool = True) -> torch.Tensor:
    """q, k: N×M×D L2-normalised embeddings at the same M locations of N images → mean cross-entropy of picking each
    query's own key among the internal (and, with `external`, external) keys."""
    n, m, _ = q.shape
    if external:
        keys, start = gather_batch(k.reshape(n * m, -1))  # this process's keys start at row `start`
        logits = q.reshape(n * m, -1).float() @ keys.float().t() / tau  # (NM)×(global NM)
        target = torch.arange(start, start + n * m, device=q.device)
    else:
        logits = torch.bmm(q.float(), k.float().transpose(1, 2)).reshape(n * m, m) / tau  # per image M×M
        target = torch.arange(m, device=q.device).repeat(n)
    return F.cross_entropy(logits, target)


class DualContrast(nn.Module):
    def __init__(self, channels_b: list[int], channels_o: list[int], layers: tuple[int, ...] = (0, 2, 4),
                 n_patches: int = 256, tau: float = 0.07, external: bool = True):
        super().__init__()
        self.layers = tuple(i for i in layers if i < min(len(channels_b), len(channels_o))) or (0,)
        self.n_patches, self.tau, self.external = n_patches, tau, external
        self.heads_b = make_heads([channels_b[i] for i in self.layers])  # for G_B's features
        self.heads_o = make_heads([channels_o[i] for i in self.layers])  # for G_O's features

    def direction(self, key_enc: nn.Module, key_heads: nn.ModuleList, query_enc: nn.Module, query_heads: nn.ModuleList,
                  src: torch.Tensor, out: torch.Tensor, rand: StepRandom) -> torch.Tensor:
        feats_k, feats_q = key_enc.encode(src), query_enc.encode(out)
        total = 0.0
        for j, i in enumerate(self.layers):
            fk, fq = feats_k[i], feats_q[i]
            h, w = fk.shape[-2:]
            loc = rand.choice(h * w, min(self.n_patches, h * w))
            k = key_heads[j](gather_locations(flat_locations(fk), loc))
            q = query_heads[j](gather_locations(flat_locations(fq), loc))
            total = total + dual_patch_nce(q, k, self.tau, self.external)
        return total / len(self.layers)

    def forward(self, g_b: nn.Module, g_o: nn.Module, o: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                fake_o: torch.Tensor, rand: StepRandom) -> torch.Tensor:
        """Mean of the two directions: (O → B = G_B(O)) and (C → G_O(C))."""
        rain_to_clean = self.direction(g_b, self.heads_b, g_o, self.heads_o, o, b, rand)
        clean_to_rain = self.direction(g_o, self.heads_o, g_b, self.heads_b, c, fake_o, rand)
        return 0.5 * (rain_to_clean + clean_to_rain)
