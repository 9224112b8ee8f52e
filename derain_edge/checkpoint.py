"""Resumable training checkpoints as one safetensors file: module weights, optimizer state and JSON metadata.

No pickle is involved, so a checkpoint from anywhere loads safely; writes are atomic, so a run killed mid-save
(even with SIGKILL) leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .files import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from, with the reason."""


def save_checkpoint(path: str | Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], meta: dict) -> Path:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
    groups = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for idx, state in sd["state"].items():
            for k, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{name}.{idx}.{k}"] = v.detach().cpu().contiguous().clone()
                else:
                    scalars[f"{name}.{idx}.{k}"] = v
    header = {
        "format": "derain-edge/checkpoint",
        "meta": json.dumps(meta),
        "param_groups": json.dumps(groups),
        "optim_scalars": json.dumps(scalars),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def load_checkpoint(path: str | Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restores modules and optimizers in place and returns the metadata saved with them."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {e}") from e
    if header.get("format") != "derain-edge/checkpoint":
        raise CheckpointError(f"{path}: not a derain-edge training checkpoint (format {header.get('format')!r})")
    for name, module in modules.items():
        prefix = f"{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights for '{name}' do not fit this model: {e}") from e
    groups = json.loads(header["param_groups"])
    scalars = json.loads(header["optim_scalars"])
    for name, opt in optimizers.items():
        state: dict[int, dict] = {}
        prefix = f"optim.{name}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix):].split(".", 1)
                state.setdefault(int(idx), {})[key] = v
        for k, v in scalars.items():
            n, idx, key = k.split(".", 2)
            if n == name:
                state.setdefault(int(idx), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": groups[name]})
    return json.loads(header["meta"])
