"""Self-consistency of the decomposition, ‖B + R − O‖² (NLCL eq. 1: a rainy image is image layer plus rain layer),
and the L1 sparsity prior on the rain layer, ‖R‖₁ (rain streaks cover a small part of the image). Both are means
over pixels and batch."""
from __future__ import annotations

import torch


def self_consistency(b: torch.Tensor, r: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    return ((b.float() + r.float() - o.float()) ** 2).mean()


def sparsity(r: torch.Tensor) -> torch.Tensor:
    return r.float().abs().mean()
