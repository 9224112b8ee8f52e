"""Weights as safetensors: safe to load from anywhere (no pickle), small enough to ship inside the package."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from derain_edge.files import atomic_path

from .model import LPNet

SHIPPED = "lpnet_rain.safetensors"


def shipped_weights_path() -> Path:
    return Path(str(resources.files("lpnet") / "pretrained" / SHIPPED))


def save_weights(model: LPNet, path: str | Path, metadata: dict | None = None) -> Path:
    """Writes the model's state dict atomically; `metadata` (JSON-able) goes into the safetensors header."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "derain-edge/lpnet", "metadata": json.dumps(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_weights(model: LPNet, path: str | Path) -> dict:
    """Loads weights into `model` and returns the stored metadata. Clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        from derain_edge.weights_io import foreign_weights_message

        raise ValueError(foreign_weights_message(path, e)) from e
    state = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("optim.")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not hold LPNet weights: missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ValueError(f"{path}: tensor {k} has shape {tuple(v.shape)}, LPNet expects {tuple(expected[k].shape)}")
    model.load_state_dict(state)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    try:
        return json.loads(header.get("metadata", "{}"))
    except json.JSONDecodeError:
        return {}


def load_pretrained(path: str | Path | None = None, device: str | torch.device = "cpu") -> LPNet:
    """LPNet with the shipped weights (or `path`), in eval mode."""
    model = LPNet()
    path = Path(path) if path is not None else shipped_weights_path()
    if path == shipped_weights_path() and not path.is_file():
        raise FileNotFoundError(f"the shipped LPNet weights are missing from the installation ({path})")
    load_weights(model, path)
    return model.eval().to(device)
