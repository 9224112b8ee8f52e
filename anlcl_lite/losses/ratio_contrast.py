"""Contrastive regularisation as a distance ratio (CCLGAN, in AECR-Net's form): an anchor embedding is pulled
towards its positives and pushed from its negatives,
    L = Σ_p w_p · d(a, p) / (Σ_n w_n · d(a, n) + ε),   d = mean absolute difference,
with positives and negatives detached (only what produced the anchor is trained by it)."""
from __future__ import annotations

import torch

EPS = 1e-7


def _d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.detach().float()).abs().mean()


def contrast_ratio(anchor: torch.Tensor, positives: list[tuple[torch.Tensor, float]],
                   negatives: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    pull = sum(w * _d(anchor, p) for p, w in positives)
    push = sum(w * _d(anchor, n) for n, w in negatives)
    return pull / (push + EPS)
