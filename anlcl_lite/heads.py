"""Projection heads of the contrastive terms: 2-layer MLPs with 256 units (SimCLR/CUT style), one per encoder layer.

The released NLCL code created its MLP heads lazily inside the forward pass, after the optimiser had been built, so
they received gradients but were never stepped (and were re-zeroed each iteration). Here they are ordinary
submodules, built up front from the encoder's channel counts, handed to the generator's optimiser and saved in
checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPHead(nn.Module):
    def __init__(self, in_channels: int, units: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_channels, units), nn.ReLU(inplace=True), nn.Linear(units, units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """…×C features → …×units, L2-normalised (cosine similarities in the contrastive logits)."""
        return F.normalize(self.net(x), dim=-1)


def make_heads(channels: list[int], units: int = 256) -> nn.ModuleList:
    return nn.ModuleList(MLPHead(c, units) for c in channels)


def flat_locations(feats: torch.Tensor) -> torch.Tensor:
    """N×C×h×w → N×(h·w)×C (row-major locations, matching `sampling`'s indices)."""
    return feats.flatten(2).transpose(1, 2)
