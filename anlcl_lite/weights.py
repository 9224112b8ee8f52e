"""G_B weights as safetensors (no pickle, safe from anywhere), with the generator's configuration in the header so
a file rebuilds the right architecture."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from derain_edge.files import atomic_path
from derain_edge.weights_io import foreign_weights_message

from .generator import GeneratorConfig, LightGenerator

SHIPPED = "anlcl_lite_gb.safetensors"
FORMAT = "derain-edge/anlcl-lite-gb"


def shipped_weights_path() -> Path:
    return Path(str(resources.files("anlcl_lite") / "pretrained" / SHIPPED))


def save_weights(model: LightGenerator, path: str | Path, metadata: dict | None = None) -> Path:
    """Writes G_B's state dict and configuration atomically; `metadata` (JSON-able) goes into the header."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "config": json.dumps(model.config.to_dict()), "metadata": json.dumps(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def read_weights(path: str | Path) -> tuple[GeneratorConfig, dict[str, torch.Tensor], dict]:
    """(config, tensors, metadata) of a G_B weights file; clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(foreign_weights_message(path, e)) from e
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} does not hold ANLCL-lite G_B weights (format {header.get('format')!r})")
    try:
        config = GeneratorConfig(**json.loads(header["config"]))
        meta = json.loads(header.get("metadata", "{}"))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable generator configuration in the header: {e}") from e
    return config, tensors, meta


def load_weights(path: str | Path) -> tuple[LightGenerator, dict]:
    """(G_B built from the file's configuration with its weights, metadata)."""
    config, tensors, meta = read_weights(path)
    model = LightGenerator(config, "image")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise ValueError(f"{path}: tensors do not fit the stored generator configuration: {e}") from e
    return model, meta


def load_pretrained(path: str | Path | None = None, device: str | torch.device = "cpu") -> LightGenerator:
    """The shipped ANLCL-lite G_B (or the one in `path`), in eval mode: N×3×H×W RGB [0, 1] in, derained B out."""
    path = Path(path) if path is not None else shipped_weights_path()
    if path == shipped_weights_path() and not path.is_file():
        raise FileNotFoundError(f"the shipped ANLCL-lite weights are missing from the installation ({path})")
    model, _ = load_weights(path)
    return model.eval().to(device)
