"""LPNet (Fu et al., TNNLS 2019): a 7,548-parameter Laplacian-pyramid deraining network."""
from .model import LPNet, count_parameters
from .weights import load_pretrained, load_weights, save_weights

__all__ = ["LPNet", "count_parameters", "load_pretrained", "load_weights", "save_weights"]
