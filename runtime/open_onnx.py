"""Opening an ONNX model in the engine asked for (onnxruntime, OpenVINO, OpenCV DNN, or a TensorRT engine built from
it on first use): shared by ``runtime.loader`` (artifacts) and ``runtime.auto`` (the cached export of weights)."""
from __future__ import annotations

from pathlib import Path

from derain_edge.engines import backends as B
from .errors import BackendError


def _prefer_openvino(sidecar: dict, precision: str | None) -> bool:
    """auto on a CPU-only machine: an INT8 Q/DQ model runs ~3× faster in OpenVINO (VNNI kernels) than in
    onnxruntime (measured by derain-bench, docs/runtime.md), so use it when it is installed."""
    from derain_edge.optional import importable

    if (precision or sidecar.get("precision")) != "int8" or not importable("openvino"):
        return False
    try:
        import onnxruntime as ort
    except ImportError:
        return True
    return not ({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def open_onnx(path: Path, sidecar: dict, backend: str, threads, precision) -> B.Backend:
    if backend == "auto" and _prefer_openvino(sidecar, precision):
        backend = "openvino"
    if backend in ("auto", "onnxruntime"):
        return B.OrtBackend(path, sidecar, threads=threads, precision=precision)
    if backend == "openvino":
        return B.OpenVinoBackend(path, sidecar, threads=threads, precision=precision)
    if backend == "opencv":
        return B.OpenCvDnnBackend(path, sidecar, precision=precision, threads=threads)
    if backend == "tensorrt":
        return tensorrt_from_onnx(path, sidecar, precision or sidecar.get("precision", "fp16"), path.parent)
    raise BackendError(f"{path}: backend '{backend}' cannot run an ONNX model; use onnxruntime, openvino, opencv "
                       "or tensorrt")


def tensorrt_from_onnx(onnx_path: Path, sidecar: dict, precision: str, cache_dir: Path) -> B.Backend:
    """Builds (first use) or reuses the cached engine for this GPU and TensorRT version, then opens it."""
    B._import("tensorrt", "tensorrt", "the TensorRT backend")
    try:
        from export.tensorrt_build import build_engine
    except ImportError as e:
        raise BackendError(f"building TensorRT engines needs export.tensorrt_build ({e})") from e
    try:
        engine = build_engine(onnx_path, precision, cache_dir / ".engines")
    except (RuntimeError, ValueError, OSError) as e:
        raise BackendError(f"{onnx_path}: building the TensorRT engine failed: {e}") from e
    return B.TensorRTBackend(engine, sidecar, precision)
