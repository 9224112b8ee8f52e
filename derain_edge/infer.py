"""Run a PyTorch deraining model on one RGB uint8 image (the form every CLI and test here uses)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .imageio import ImageError


@torch.inference_mode()
def derain_rgb(model: nn.Module, rgb: np.ndarray) -> np.ndarray:
    """H×W×3 RGB uint8 in, H×W×3 RGB uint8 out (rounded, as a saved result would be)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an H×W×3 RGB uint8 image, got {getattr(rgb, 'shape', type(rgb))} {getattr(rgb, 'dtype', '')}")
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device, torch.float32).div_(255.0)
    y = model(x).clamp(0.0, 1.0)
    return y[0].permute(1, 2, 0).mul(255.0).round().to(torch.uint8).cpu().numpy()
