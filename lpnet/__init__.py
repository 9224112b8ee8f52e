"""LPNet (Fu et al., TNNLS 2019): a 7,548-parameter Laplacian-pyramid deraining network."""
from .model import LPNet, count_parameters
from .weights import load_pretrained, load_weights, save_weights

__all__ = ["LPNet", "count_parameters", "load_pretrained", "load_weights", "save_weights"]

from derain_edge.registry import ExportHints, register_model

from .weights import shipped_weights_path as _shipped


# Weights whose int8 rounding costs int16x8 the most on the shipped LPNet (docs/export_mobile.md, per-layer PyTorch
# simulation): the finest sub-network's 1×1 conv, reused by all 5 recursions (0.068 dB), and the pyramid's upsampling
# kernel (0.053 dB). TFLite int16x8 splits them into an int8-exact part plus an int8 residual
# (export.tflite.split_int8_weights).
@register_model("lpnet", default_weights=_shipped, description="LPNet (Fu et al. 2019), 7,548 parameters",
                export_hints=ExportHints(int8_sensitive_weights=("subnets.4.block1.weight", "pyramid.up.weight")))
def _load(weights=None):
    return load_pretrained(weights)
