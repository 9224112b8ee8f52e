"""Asymmetric contrast (ANLCL, Chang et al. TPAMI 2023): image patches have a higher intrinsic dimension than rain
patches, so the two clusters in embedding space should not be equally compact. We model the compactness discrepancy
with a margin on the clusters' dispersions:

    D(Z)   = mean_i (1 − cos(z_i, c)),  c = mean_i z_i               (dispersion of one layer's embeddings)
    L_asym = mean_n max(0, m − η_n · (D(Z_B,n) − D(Z_R,n)))

η_n = +1 asks the image cluster to be the looser one by at least m, η_n = −1 the rain cluster. ANLCL picks η per
sample; we pick it from the Shannon entropy of the sampled image-space patches: η = +1 when the image patches carry
more entropy than the rain patches (the usual case), −1 otherwise. Fixed-η modes ("+1", "-1") are for ablation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ETA_MODES = ("entropy", "+1", "-1")


def patch_entropy(patches: torch.Tensor, bins: int = 16) -> torch.Tensor:
    """Shannon entropy (nats) of the value histogram of each sample's patches, N×M×D → N. Values are min–max
    normalised per sample first, so the entropy measures structure, not contrast (a constant set gives 0)."""
    x = patches.detach().float().flatten(1)
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    scaled = (x - lo) / (hi - lo).clamp_min(1e-12)
    idx = (scaled * bins).long().clamp(0, bins - 1)
    counts = torch.zeros(x.shape[0], bins, device=x.device).scatter_add_(1, idx, torch.ones_like(scaled))
    p = counts / x.shape[1]
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1)


def choose_eta(entropy_b: torch.Tensor, entropy_r: torch.Tensor, mode: str = "entropy") -> torch.Tensor:
    """η ∈ {+1, −1} per sample."""
    if mode == "entropy":
        return torch.where(entropy_b >= entropy_r, 1.0, -1.0).to(entropy_b.device)
    if mode in ("+1", "-1"):
        return torch.full_like(entropy_b, 1.0 if mode == "+1" else -1.0)
    raise ValueError(f"unknown η mode {mode!r}; choose from {', '.join(ETA_MODES)}")


def dispersion(z: torch.Tensor) -> torch.Tensor:
    """N×M×D embeddings → N: mean cosine distance to the cluster's centroid."""
    z = F.normalize(z.float(), dim=-1)
    c = F.normalize(z.mean(1, keepdim=True), dim=-1)
    return (1.0 - (z * c).sum(-1)).mean(1)


def asymmetric_loss(z_b: torch.Tensor, z_r: torch.Tensor, eta: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    return F.relu(margin - eta * (dispersion(z_b) - dispersion(z_r))).mean()
