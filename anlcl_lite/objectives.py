"""The objective factory: ``build_objective(cfg, models)`` picks ANLCL/NLCL (``anlcl_lite.objective``) or a peer
(``anlcl_lite.dcdgan``, ``anlcl_lite.cclgan``). It lives above all three, so the peers can build on
``anlcl_lite.objective``'s shared pieces (LossConfig, the LSGAN discriminator loss) without an import circle."""
from __future__ import annotations

from torch import nn

from .objective import LossConfig, Objective


def build_objective(cfg: LossConfig, models: nn.Module) -> nn.Module:
    """The objective module for `cfg.objective` over the networks in `models` (g_b, g_r or g_o, d, d_o)."""
    if cfg.objective == "dcdgan":
        from .dcdgan import DcdganObjective  # imported on demand: the peers' extra modules stay out of plain ANLCL

        return DcdganObjective(cfg, models.g_b, models.g_o)
    if cfg.objective == "cclgan":
        from .cclgan import CclganObjective
        from .semantic import load_semantic_encoder

        encoder = load_semantic_encoder(cfg.semantic_encoder, cfg.semantic_size) if cfg.intra else None
        return CclganObjective(cfg, models.g_b, models.g_o, encoder)
    return Objective(cfg, models.g_b, models.d)
