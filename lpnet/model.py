"""LPNet: Lightweight Pyramid Network for single-image deraining (Fu, Liang, Huang, Ding, Paisley; IEEE TNNLS 2019).

Equations refer to the paper:
  eq. (1)  Laplacian pyramid  L_n(X) = G_n(X) − upsample(G_{n+1}(X)),  fixed kernel outer([1,4,6,4,1]/16).
  eq. (2)–(5) one sub-network per level n (features 16, 8, 4, 2, 1 from fine to coarse):
           f0   = LReLU(W0 ∗ L_n)                                    feature extraction
           f_t  = LReLU(W3 ∗ LReLU(W2 ∗ LReLU(W1 ∗ f_{t−1}))) + f0   recursive block, t = 1…5, W1..W3 shared over t
           S_n  = W4 ∗ f_5 + L_n                                     1×1 reconstruction, residual to the level input
  eq. (6)  Gaussian-pyramid reconstruction, coarse to fine:
           Ŷ_coarsest = ReLU(S_coarsest),   Ŷ_n = ReLU(S_n + upsample(Ŷ_{n+1}))
LeakyReLU slope 0.2. 7,548 trainable parameters. In eval mode the output is clipped to [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pyramid import LaplacianPyramid

LEVELS = 5
FEATURES_FINE_TO_COARSE = (16, 8, 4, 2, 1)
RECURSIONS = 5
SLOPE = 0.2


class SubNet(nn.Module):
    """Eqs. (2)–(5): the per-level recursive residual network (weights of the block shared across recursions)."""

    def __init__(self, features: int, recursions: int = RECURSIONS):
        super().__init__()
        self.recursions = recursions
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.block3a = nn.Conv2d(features, features, 3, padding=1)
        self.block1 = nn.Conv2d(features, features, 1)
        self.block3b = nn.Conv2d(features, features, 3, padding=1)
        self.tail = nn.Conv2d(features, 3, 1)
        # Zero-initialised reconstruction: an untrained LPNet returns its input exactly (the pyramid is lossless),
        # so training starts from the rainy image instead of from noise. Initialisation only; eq. (5) is unchanged.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, band: torch.Tensor) -> torch.Tensor:
        f0 = F.leaky_relu(self.head(band), SLOPE)
        f = f0
        for _ in range(self.recursions):
            f = F.leaky_relu(self.block3a(f), SLOPE)
            f = F.leaky_relu(self.block1(f), SLOPE)
            f = F.leaky_relu(self.block3b(f), SLOPE)
            f = f + f0
        return self.tail(f) + band


class LPNet(nn.Module):
    """Input and output: N×3×H×W RGB in [0, 1], any H, W ≥ 1."""

    def __init__(self):
        super().__init__()
        self.pyramid = LaplacianPyramid(LEVELS)
        # stored coarse → fine, like the pyramid bands
        self.subnets = nn.ModuleList(SubNet(c) for c in reversed(FEATURES_FINE_TO_COARSE))

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All reconstructed Gaussian levels Ŷ, coarse → fine (eq. 6); the training loss needs every one."""
        bands = self.pyramid(x)
        out = F.relu(self.subnets[0](bands[0]))
        outputs = [out]
        for band, subnet in zip(bands[1:], self.subnets[1:]):
            out = F.relu(subnet(band) + self.pyramid.up(out, band))
            outputs.append(out)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPNet expects an N×3×H×W RGB tensor, got shape {tuple(x.shape)}")
        y = self.forward_pyramid(x)[-1]
        return y if self.training else y.clamp(0.0, 1.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
