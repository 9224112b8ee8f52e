"""PatchGAN discriminator (Isola et al. 2017; 70×70 receptive field) trained with the LSGAN loss (Mao et al. 2017).

In NLCL/ANLCL the discriminator doubles as the encoder of the layer contrast (Ye et al. CVPR'22 Sec. 3.3,
"discriminator as encoder"): `features(x)` returns the activations of its first blocks.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 (4×4 convs, stride 2,2,2,1), LeakyReLU 0.2, InstanceNorm from the second block; 70×70
    receptive field for n_layers=3 whatever the width `ndf`."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(ch, out, 4, stride, 1), nn.InstanceNorm2d(out, affine=True),
                                        nn.LeakyReLU(0.2, inplace=True)))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(ch, 1, 4, 1, 1)
        self.channels = [b[0].out_channels for b in blocks]

    def features(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """Activations of the blocks numbered in `layers` (0 = first, stride 2)."""
        feats, last = [], max(layers)
        for i, block in enumerate(self.blocks[: last + 1]):
            x = block(x)
            if i in layers:
                feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.out(x)


def receptive_field(n_layers: int = 3) -> int:
    """Receptive field in pixels of the output map (kernel 4; strides 2 for the first n_layers blocks, then 1, 1)."""
    strides = [2] * n_layers + [1, 1]
    rf, jump = 1, 1
    for s in strides:
        rf += 3 * jump
        jump *= s
    return rf
