"""Resumable training checkpoints as one safetensors file: module weights, optimizer state and JSON metadata.

No pickle is involved, so a checkpoint from anywhere loads safely; writes are atomic, so a run killed mid-save
(even with SIGKILL) leaves the previous checkpoint intact.

Damage that keeps the file readable (bytes zeroed or flipped by a disk, a copy, a sync tool) is caught by the
sha256 of every tensor stored in the header (``tensors_sha256``). Each save first keeps the checkpoint it replaces as
``<name>.prev.safetensors``; ``load_checkpoint`` falls back to it, with a warning, when the newest one is damaged.
Stale temporary files of writes killed half-way (``.<name>.*.tmp*``) are removed at the next save.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .files import atomic_path, remove_stale_temps

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from, with the reason."""


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint was damaged; the previous good one was loaded instead."""


def previous_path(path: str | Path) -> Path:
    """``last.safetensors`` → ``last.prev.safetensors``: the checkpoint a save replaced."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        v = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


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
    header["tensors_sha256"] = tensors_digest(tensors)
    header["header_sha256"] = _header_digest(header)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
        if path.is_file() and _is_good(path):  # keep the one being replaced, if sound (a hard link: `path` never
            _keep_previous(path)                # goes missing); a damaged one never overwrites a good .prev
    return path


def _header_digest(header: dict) -> str:
    return hashlib.sha256(json.dumps({k: header[k] for k in sorted(header) if k != "header_sha256"}).encode()).hexdigest()


def _is_good(path: Path) -> bool:
    try:
        _read(path)
        return True
    except CheckpointError:
        return False


def _keep_previous(path: Path) -> None:
    prev = previous_path(path)
    staged = prev.with_name(f".{prev.name}.link.tmp")
    try:
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)
        except OSError:  # a file system without hard links: copy
            staged.write_bytes(path.read_bytes())
        os.replace(staged, prev)
    except OSError as e:
        log.warning("could not keep %s as %s (%s)", path, prev, e)
        staged.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict, dict]:
    """(header, tensors) of a checkpoint whose checksums hold; CheckpointError naming the damage otherwise."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated?): {e}") from e
    if header.get("format") != "derain-edge/checkpoint":
        raise CheckpointError(f"{path}: not a derain-edge training checkpoint (format {header.get('format')!r})")
    if "tensors_sha256" in header:  # checkpoints written before checksums load unchecked
        if header.get("header_sha256") not in (None, _header_digest(header)):
            raise CheckpointError(f"{path}: corrupt checkpoint: its metadata does not match its checksum")
        if tensors_digest(tensors) != header["tensors_sha256"]:
            raise CheckpointError(f"{path}: corrupt checkpoint: the tensor data does not match its sha256 "
                                  "(damaged on disk or in a copy)")
    return header, tensors


def load_checkpoint(path: str | Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    fallback: bool = True) -> dict:
    """Restores modules and optimizers in place and returns the metadata saved with them.

    A damaged checkpoint (unreadable, or failing its checksums) raises CheckpointError, unless `fallback` and the
    previous one (``<name>.prev.safetensors``) is good: that one is loaded, with a CheckpointFallbackWarning."""
    path = Path(path)
    try:
        header, tensors = _read(path)
    except CheckpointError as e:
        prev = previous_path(path)
        if not (fallback and prev.is_file()) or "not a derain-edge training checkpoint" in str(e):
            raise
        try:
            header, tensors = _read(prev)
        except CheckpointError as e2:
            raise CheckpointError(f"{e}; the previous checkpoint is damaged too: {e2}") from e
        message = f"{e}; resuming from the previous good checkpoint {prev} instead"
        warnings.warn(message, CheckpointFallbackWarning, stacklevel=2)
        log.warning("%s", message)
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
