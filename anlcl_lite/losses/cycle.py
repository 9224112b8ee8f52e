"""Cycle terms of the translation objectives (DCD-GAN): per-channel colour cycle-consistency and a frequency loss.

The released DCD-GAN code computed both (against the unpaired image of the other domain) but never added them to the
generator loss. Here they compare a cycle's reconstruction with its own input, where a pixel correspondence exists:
    L_cyc  = Σ_{c ∈ R,G,B} ‖F(G(x))_c − x_c‖₁              (each channel's mean absolute error, summed)
    L_freq = mean |Re ΔX| + |Im ΔX|,  ΔX = FFT₂(F(G(x))) − FFT₂(x)   (orthonormal 2-D FFT over H×W)
The released code squared the spectrum difference; with an orthonormal FFT that is the spatial MSE again
(Parseval), so we take the L1 of the real and imaginary parts (as MIMO-UNet's FFT loss), which weighs every
frequency alike instead of favouring the low ones that dominate the pixel error.
"""
from __future__ import annotations

import torch


def colour_cycle(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    diff = (reconstruction.float() - original.float()).abs()
    return diff.mean(dim=(0, 2, 3)).sum()


def frequency_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    delta = torch.fft.fft2(reconstruction.float() - original.float(), norm="ortho")
    return (delta.real.abs() + delta.imag.abs()).mean()
