"""InfoNCE with several positives and a set of negatives per query (the contrastive core of NLCL eq. 3-4, PatchNCE).

For query q, positives k⁺_1..P and negatives k⁻_1..K (all L2-normalised), with s = q·k / τ:
    ℓ(q) = −(1/P) Σ_p log( exp(s⁺_p) / (exp(s⁺_p) + Σ_k exp(s⁻_k)) )
i.e. each positive is classified against the shared negatives; with P = 1 this is exactly
cross_entropy([s⁺, s⁻_1..K], class 0), the PatchNCE of CUT (Park et al. 2020).
"""
from __future__ import annotations

import torch


def nce_from_logits(s_pos: torch.Tensor, s_neg: torch.Tensor) -> torch.Tensor:
    """s_pos: …×P, s_neg: …×K similarities already divided by τ → scalar mean over queries and positives."""
    neg_lse = torch.logsumexp(s_neg.float(), dim=-1, keepdim=True)
    s_pos = s_pos.float()
    return (torch.logaddexp(s_pos, neg_lse.expand_as(s_pos)) - s_pos).mean()


def info_nce(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, tau: float) -> torch.Tensor:
    """q: …×D, pos: …×P×D, neg: …×K×D → scalar mean over queries and positives."""
    q = q.float().unsqueeze(-2)
    return nce_from_logits((q * pos.float()).sum(-1) / tau, (q * neg.float()).sum(-1) / tau)


def gathered_logits(q: torch.Tensor, keys: torch.Tensor, idx: torch.Tensor, tau: float) -> torch.Tensor:
    """q: N×M×D queries, keys: N×L×D, idx: N×M×k → N×M×k values q·keys[idx] / τ, via one N×M×L matrix product
    instead of materialising N×M×k×D gathered keys."""
    sim = torch.bmm(q.float(), keys.float().transpose(1, 2))  # N×M×L
    return torch.gather(sim, 2, idx) / tau
