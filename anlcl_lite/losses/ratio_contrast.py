"""Contrastive regularisation as a distance ratio (CCLGAN, after AECR-Net): an anchor embedding is pulled towards its
positives and pushed from its negatives. With d the mean absolute difference (positives and negatives detached, so
only what produced the anchor is trained by it):

    pull = Σ_p w_p · d(a, p),   push = Σ_n w_n · d(a, n),   L = pull / (pull + push + ε)

The released code minimises pull / (push + ε), which is unbounded: when an anchor coincides with a negative (an
untrained generator is the identity, so G_O(C) = C exactly) it jumps to ~10⁷ and its gradient swamps every other
term. pull / (pull + push) = r / (1 + r) orders every case the same way (it is increasing in r = pull / push) and
stays in [0, 1]."""
from __future__ import annotations

import torch

EPS = 1e-7


def _d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.detach().float()).abs().mean()


def contrast_ratio(anchor: torch.Tensor, positives: list[tuple[torch.Tensor, float]],
                   negatives: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    pull = sum(w * _d(anchor, p) for p, w in positives)
    push = sum(w * _d(anchor, n) for n, w in negatives)
    return pull / (pull + push + EPS)
