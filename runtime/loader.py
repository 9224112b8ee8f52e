"""Turns whatever the caller passes as ``model=`` into a Backend: weights, a model name, an nn.Module, or an exported
artifact (ONNX, TensorRT engine, Jetson bundle folder, TFLite, CoreML) described by its sidecar JSON.

``backend="auto"`` picks, per artifact kind: a model name or weights → exported to ONNX once (cached) and run on the
fastest engine installed (``runtime.auto``); ONNX → onnxruntime (its CUDA/TensorRT providers when present; an INT8
Q/DQ model on a CPU-only machine → OpenVINO when installed); engine/bundle → TensorRT when installed, otherwise the
bundle's ONNX as an ONNX file; .tflite → LiteRT; .mlpackage → CoreML;
an nn.Module → PyTorch.
"""
from __future__ import annotations

import logging
from pathlib import Path

from . import backends as B
from .open_onnx import open_onnx as _onnx, tensorrt_from_onnx as _tensorrt_from_onnx
from .contract import check_file, check_onnx_graph, check_value_ranges, probe
from .errors import BackendError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "pytorch", "pytorch-compile", "onnxruntime", "openvino", "opencv", "tflite", "coreml", "tensorrt")
_ALIASES = {"torch": "pytorch", "eager": "pytorch", "ort": "onnxruntime", "onnx": "onnxruntime", "ov": "openvino",
            "cv2": "opencv", "dnn": "opencv", "litert": "tflite", "trt": "tensorrt", "compile": "pytorch-compile"}
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def normalize_backend(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(key, BACKENDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise BackendError(f"unknown backend '{name}'{hint}; choose from: {', '.join(BACKENDS)}")
    return key


def _sidecar(path: Path) -> dict | None:
    """The artifact's sidecar, or None when there is none (an ONNX exported by hand still runs)."""
    from export.sidecar import SidecarError, read_sidecar, sidecar_path

    if not sidecar_path(path).is_file():
        return None
    try:
        sc = read_sidecar(path)  # also confines the artifact to the sidecar's folder and checks its integrity record
    except SidecarError as e:
        raise BackendError(str(e)) from e
    check_value_ranges(sc, str(sidecar_path(path)))
    return sc


def _onnx_sidecar(path: Path) -> dict:
    check_file(path)
    sc = _sidecar(path)
    inputs, outputs = check_onnx_graph(path, sc)  # the graph's own I/O must agree with the sidecar
    if sc is not None:
        return sc
    log.info("%s has no sidecar; reading its I/O from the graph (NCHW float RGB in [0, 1] assumed)", path)
    dims = inputs[0]["shape"][2:]
    sizes = [dims] if all(isinstance(d, int) and d > 0 for d in dims) else "dynamic"
    return {"inputs": inputs, "outputs": outputs, "sizes": sizes, "precision": "fp32"}


def open_backend(model=None, backend: str = "auto", *, precision: str | None = None, device: str | None = None,
                 threads: int | None = None, model_name: str = "lpnet") -> B.Backend:
    """model: None/"lpnet" (shipped weights), a registered model name, an nn.Module, a weights file, or an artifact."""
    backend = normalize_backend(backend)
    if isinstance(model, B.Backend):
        return model
    try:
        from torch import nn
    except ImportError:  # a device with only an inference runtime
        nn = None
    if nn is not None and isinstance(model, nn.Module):
        return _torch(model, backend, device, precision, threads, "memory")
    if model is None:
        model = model_name
    text = str(model)
    path = Path(text)
    from derain_edge.registry import is_model, list_models, load_model

    if is_model(text) and not path.is_file() and not (path.is_dir() and bundle_artifacts(path)):
        net, weights = load_model(text, None)  # a model name (even when a folder of that name is in the cwd)
        return _torch(net, backend, device, precision, threads, str(weights))
    if not path.exists():
        raise BackendError(f"{text}: no such file or folder, and not a model name ({', '.join(list_models())})")
    if path.name.endswith(".json"):
        from export.sidecar import SidecarError, artifact_path

        try:
            path = artifact_path(path)
        except SidecarError as e:
            raise BackendError(str(e)) from e
    check_file(path)
    suffix = path.suffix.lower()
    if suffix in WEIGHT_SUFFIXES:
        try:
            net, weights = load_model(model_name, path)
        except (ValueError, FileNotFoundError) as e:
            raise BackendError(str(e)) from e
        return _torch(net, backend, device, precision, threads, str(weights))
    # an artifact: whatever engine runs it, its output contract is checked now with a probe frame
    if suffix == ".onnx":
        return _probed(_onnx(path, _onnx_sidecar(path), backend, threads, precision))
    if suffix in (".engine", ".plan", ".trt"):
        _only(backend, ("tensorrt",), path)
        return _probed(B.TensorRTBackend(path, _sidecar(path), precision))
    if suffix == ".tflite":
        _only(backend, ("tflite",), path)
        return _probed(B.TfliteBackend(path, _sidecar(path), threads, precision))
    if suffix in (".mlpackage", ".mlmodel"):
        _only(backend, ("coreml",), path)
        return _probed(B.CoreMLBackend(path, _sidecar(path), precision=precision))
    if path.is_dir():
        return _probed(_bundle(path, backend, precision, threads))
    raise BackendError(f"{path}: unknown model file type '{suffix}' (expected weights {', '.join(WEIGHT_SUFFIXES)}, "
                       ".onnx, .engine, .tflite, .mlpackage or a Jetson bundle folder)")


def _probed(engine: B.Backend) -> B.Backend:
    """`engine`, after one probe frame showed it keeps the contract (3 channels, same H×W; runtime.contract)."""
    try:
        probe(engine)
    except BackendError:
        engine.close()
        raise
    return engine


def _only(backend: str, allowed: tuple[str, ...], path: Path) -> None:
    if backend != "auto" and backend not in allowed:
        raise BackendError(f"{path}: backend '{backend}' cannot run this artifact; use {' or '.join(allowed)}")


def _torch(net, backend, device, precision, threads, source):
    if source != "memory" and backend in ("auto", "onnxruntime", "openvino", "opencv"):
        from .auto import fast_backend  # weights on disk: exported to ONNX once (cached), fastest engine

        return fast_backend(net, source, backend, precision=precision, device=device, threads=threads)
    _only(backend, ("pytorch", "pytorch-compile"), Path(source))
    return B.TorchBackend(net, device=device, precision=precision or "fp32", threads=threads,
                          compile=backend == "pytorch-compile", source=source)


def bundle_artifacts(folder: Path) -> dict[str, Path]:
    """precision → ONNX path, from the sidecars in a Jetson bundle folder."""
    found = {}
    for sc_path in sorted(folder.glob("*.onnx.json")):
        sc = _sidecar(sc_path)  # read_sidecar refuses "../…" and absolute artifact names
        if sc is not None:
            from export.sidecar import resolve_artifact

            found.setdefault(sc["precision"], resolve_artifact(sc_path, sc["artifact"]))
    return found


def _bundle(folder: Path, backend: str, precision: str | None, threads) -> B.Backend:
    found = bundle_artifacts(folder)
    if not found:
        raise BackendError(f"{folder}: not a Jetson bundle (no <model>.onnx with its .onnx.json sidecar inside)")
    want = precision or ("fp16" if "fp16" in found else next(iter(found)))
    if want not in found:
        raise BackendError(f"{folder}: the bundle has no {want} model (it has: {', '.join(found)})")
    onnx_path = found[want]
    sidecar = _sidecar(onnx_path)
    if backend == "tensorrt" or backend == "auto":
        try:
            return _tensorrt_from_onnx(onnx_path, sidecar, want, folder)
        except BackendError as e:
            if backend == "tensorrt":
                raise
            log.warning("TensorRT unavailable (%s); running the bundle's %s ONNX on the CPU", e, want)
    return _onnx(onnx_path, sidecar, backend, threads, want)
