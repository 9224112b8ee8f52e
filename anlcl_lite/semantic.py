"""The frozen semantic image encoder of CCLGAN's intra-cycle contrast, loaded from a local file.

CCLGAN (Zhao et al.) uses CLIP's image encoder. No weights can be downloaded at run time, so the user supplies one:

- **TorchScript** (`torch.jit.save` of a traced or scripted module; any extension, usually `.pt`). It receives an
  N×3×S×S RGB tensor in [0, 1] (S = `size`, 224 by default; images are resized bilinearly) and returns N×D
  embeddings (an N×C×h×w map or a tuple/list whose first element is one also works: it is flattened per image).
  Input normalisation (CLIP's mean/std) belongs inside the module. docs/anlcl.md shows how to trace CLIP's
  ViT-B/32 image tower into such a file on a machine that has it.

TorchScript archives hold code and tensors, not arbitrary pickled objects, so loading one is safe in the sense the
project requires (no blind pickles). The encoder's weights are frozen and kept out of the training checkpoints.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class SemanticEncoderError(ValueError):
    """The file is not a usable semantic image encoder."""


class SemanticEncoder(nn.Module):
    """Frozen wrapper: N×3×H×W in [0, 1] → N×D embeddings (gradients flow to the input, never to the weights)."""

    def __init__(self, module: nn.Module, size: int = 224):
        super().__init__()
        self.module = module.eval()
        self.size = size
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # always in eval mode (no dropout / batch-norm updates)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear", align_corners=False)
        y = self.module(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if not torch.is_tensor(y) or y.ndim < 2 or y.shape[0] != x.shape[0]:
            raise SemanticEncoderError(
                f"the semantic encoder must return one N×D tensor per batch of N images, got "
                f"{type(y).__name__} {tuple(y.shape) if torch.is_tensor(y) else ''}")
        return y.flatten(1).float()


def load_semantic_encoder(path: str | Path, size: int = 224, device: str | torch.device = "cpu") -> SemanticEncoder:
    """Loads and probes a TorchScript image encoder (one forward pass on a blank image) so a wrong file fails here,
    with its name, not in the middle of training."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"semantic encoder not found: {path}")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # torch raises RuntimeError/ValueError/zipfile errors depending on the damage
        raise SemanticEncoderError(
            f"{path} is not a TorchScript module ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}); "
            "save your encoder with torch.jit.trace(...) / torch.jit.script(...) and torch.jit.save") from e
    encoder = SemanticEncoder(module, size).to(device)
    try:
        with torch.no_grad():
            probe = encoder(torch.zeros(2, 3, size, size, device=device))
    except SemanticEncoderError as e:
        raise SemanticEncoderError(f"{path}: {e}") from e
    except Exception as e:
        raise SemanticEncoderError(f"{path}: the encoder failed on a 2×3×{size}×{size} RGB batch: {e}") from e
    if not torch.isfinite(probe).all():
        raise SemanticEncoderError(f"{path}: the encoder returns non-finite values")
    return encoder
