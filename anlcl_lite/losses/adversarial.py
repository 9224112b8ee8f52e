"""Adversarial loss on B with a least-squares GAN (Mao et al. 2017), as NLCL/ANLCL use with the PatchGAN:
D minimises ½[(D(clean) − 1)² + D(B)²], G minimises (D(B) − 1)² (means over the patch map and the batch)."""
from __future__ import annotations

import torch


def lsgan_discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (((d_real.float() - 1.0) ** 2).mean() + (d_fake.float() ** 2).mean())


def lsgan_generator(d_fake: torch.Tensor) -> torch.Tensor:
    return ((d_fake.float() - 1.0) ** 2).mean()
