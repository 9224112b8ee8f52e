"""ANLCL-lite: a light deraining generator trained without clean ground truth by asymmetric non-local contrastive
learning (Chang, Guo, Ye et al., TPAMI 2023 "ANLCL"; Ye et al., CVPR 2022 "NLCL"). See docs/anlcl.md."""
from .discriminator import PatchDiscriminator
from .generator import Decomposer, GeneratorConfig, LightGenerator, count_parameters
from .weights import load_pretrained, load_weights, save_weights, shipped_weights_path

__all__ = ["Decomposer", "GeneratorConfig", "LightGenerator", "PatchDiscriminator", "count_parameters",
           "load_pretrained", "load_weights", "save_weights", "shipped_weights_path"]

from derain_edge.registry import register_model


@register_model("anlcl", default_weights=shipped_weights_path,
                description="ANLCL-lite image branch G_B, trained without clean ground truth (docs/anlcl.md), "
                            "43,371 parameters")
def _load(weights=None):
    return load_pretrained(weights)
