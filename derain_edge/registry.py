"""The model registry (after timm's ``register_model`` / ``create_model`` / ``list_models``): one entry per deraining
network, with everything generic code needs to know about it.

An entry (``ModelSpec``) holds the builder (``load(weights_or_None)`` → the model in eval mode; None = the shipped
weights), the shipped weights path, the I/O contract (N×3×H×W float32 RGB in [0, 1] in and out, any H×W unless
``multiple_of`` says otherwise) and per-model export hints (``ExportHints``: e.g. the weights whose int8 rounding costs
TFLite int16x8 the most, split by ``export.tflite.split_int8_weights``). Generic code (export, runtime, the commands)
asks the registry instead of naming a model.

This module sits at the ground floor (it imports nothing of the project): the model packages register themselves
when imported (``lpnet/__init__.py``, ``anlcl_lite/__init__.py``), and the registry imports the built-in model
packages by name (``BUILTIN_PACKAGES``) on the first lookup, the way timm's ``timm.models`` imports its model files.

    from derain_edge.registry import create_model, list_models, load_model
    model = create_model("anlcl")                    # shipped weights, eval mode
    model, weights_path = load_model("lpnet", "my.safetensors")
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# imported on the first lookup so that every built-in model has registered itself (plugins: import yours first)
BUILTIN_PACKAGES = ("lpnet", "anlcl_lite")


@dataclass(frozen=True)
class ExportHints:
    """What exporters should know about one model. `int8_sensitive_weights`: initializer names (PyTorch state-dict
    names, kept by the ONNX export) whose int8 rounding costs most; TFLite int16x8 splits them into an int8 part and
    an int8 residual. `multiple_of`: H and W the model needs to be a multiple of (1 = any size)."""

    int8_sensitive_weights: tuple[str, ...] = ()
    multiple_of: int = 1


@dataclass(frozen=True)
class Contract:
    """The model's tensor I/O, as every exported artifact's sidecar repeats it."""

    layout: str = "NCHW"
    color: str = "RGB"
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    channels: int = 3


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: `load(weights_or_None)` returns it in eval mode (None = shipped weights);
    `default_weights()` is the shipped weights path."""

    name: str
    load: Callable[[Path | None], object]
    default_weights: Callable[[], Path]
    description: str
    contract: Contract = field(default_factory=Contract)
    export_hints: ExportHints = field(default_factory=ExportHints)


_REGISTRY: dict[str, ModelSpec] = {}
_builtins_loaded = False


def register_model(name: str, *, default_weights: Callable[[], Path], description: str,
                   contract: Contract | None = None, export_hints: ExportHints | None = None):
    """Decorator: ``@register_model("lpnet", default_weights=…, description=…)`` over ``load(weights_or_None)``."""

    def decorate(load: Callable[[Path | None], object]):
        _REGISTRY[name] = ModelSpec(name, load, default_weights, description, contract or Contract(),
                                    export_hints or ExportHints())
        return load

    return decorate


def _ensure_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for package in BUILTIN_PACKAGES:
            importlib.import_module(package)


def _order(item: tuple[int, str]) -> tuple[int, int]:
    index, name = item
    package = getattr(_REGISTRY[name].load, "__module__", "").split(".")[0]
    rank = BUILTIN_PACKAGES.index(package) if package in BUILTIN_PACKAGES else len(BUILTIN_PACKAGES)
    return rank, index


def list_models() -> list[str]:
    """Registered model names: the built-ins in ``BUILTIN_PACKAGES`` order (lpnet first, whichever package was
    imported first), then plugins in registration order."""
    _ensure_builtins()
    return [name for _, name in sorted(enumerate(_REGISTRY), key=_order)]


def get_spec(name: str) -> ModelSpec:
    """The entry of `name`; ValueError naming the choices otherwise."""
    _ensure_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; choose from: {', '.join(list_models())}")
    return _REGISTRY[name]


def is_model(name) -> bool:
    _ensure_builtins()
    return isinstance(name, str) and name in _REGISTRY


def load_model(name: str, weights: str | Path | None = None):
    """(model in eval mode, weights path actually used). Raises ValueError with a one-line reason for any problem."""
    spec = get_spec(name)
    path = Path(weights) if weights is not None else spec.default_weights()
    if weights is not None and path.is_dir():
        raise ValueError(f"weights file not found: {path} is a folder")
    try:
        model = spec.load(path if weights is not None else None)
    except FileNotFoundError as e:
        raise ValueError(str(e).strip("'\"")) from e
    except (ValueError, OSError, RuntimeError) as e:  # corrupt file, foreign tensors, shape mismatch
        message = str(e)
        raise ValueError(message if str(path) in message else f"cannot load {name} weights from {path}: {message}") from e
    return model, path


def create_model(name: str, weights: str | Path | None = None):
    """The model `name` in eval mode with the shipped weights (or `weights`); ValueError for any problem."""
    return load_model(name, weights)[0]
