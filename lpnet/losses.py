"""LPNet's training objective (Fu et al., TNNLS 2019, eq. 7–8).

    L = Σ_{n=0..4} ‖Ŷ_n − G_n(Y)‖₁  +  Σ_{n ∈ two finest} (1 − SSIM(Ŷ_n, G_n(Y))) / 2

Ŷ_n are the network's reconstructed Gaussian levels and G_n(Y) the Gaussian pyramid of the clean target.
SSIM: 11×11 Gaussian window σ = 1.5, data range 1, 'valid' windows, averaged over channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import LPNet

_C1, _C2 = 0.01**2, 0.03**2


def _window(channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(11, device=device, dtype=dtype) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    return torch.outer(g, g).expand(channels, 1, 11, 11).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of two N×C×H×W tensors in [0, 1] (images smaller than 11 px are padded)."""
    pad_h, pad_w = max(0, 11 - x.shape[2]), max(0, 11 - x.shape[3])
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
    c = x.shape[1]
    w = _window(c, x.device, x.dtype)

    def filt(t):
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return s.mean()


def lpnet_loss(model: LPNet, rainy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    outputs = model.forward_pyramid(rainy)  # coarse → fine
    targets = model.pyramid.gaussian(clean)
    loss = sum(F.l1_loss(o, t) for o, t in zip(outputs, targets))
    loss = loss + sum((1.0 - ssim(o, t)) / 2.0 for o, t in zip(outputs[-2:], targets[-2:]))
    return loss
