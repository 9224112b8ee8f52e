"""The default engine: what ``Derainer()`` and ``derain-run`` run when no backend is named.

PyTorch eager is the reference, not the fast path. For a model given by name or by weights file, ``backend="auto"``
exports the weights to a dynamic-size FP32 ONNX **once** (``export.onnx_export.torch_to_onnx``), caches it, and runs
it on the fastest engine installed, in this order (measured on the project's 2-core AVX-512 CPU, both cores busy,
320×240, one thread: onnxruntime 148 ms, OpenVINO 218 ms, OpenCV DNN 245 ms, PyTorch eager 525 ms — and PyTorch at
its default two threads 3,173 ms):

    CUDA in onnxruntime  →  PyTorch on CUDA  →  onnxruntime (CPU)  →  OpenVINO  →  OpenCV DNN  →  PyTorch (CPU)

An engine that is missing or fails to load is skipped (with the reason in the log); when the ONNX export itself is
impossible (no ``onnx``/``onnxscript``/``onnxslim``) PyTorch runs. FP32 unless asked: ``precision="bf16"`` runs the
FP32 ONNX in OpenVINO with its bf16 hint; ``precision="int8"`` quantizes it once to the TensorRT-style Q/DQ model
(calibrated on 8 rainy demo frames, cached too) and runs it in OpenVINO when installed (VNNI kernels), else
onnxruntime.

Cache: ``$DERAIN_EDGE_CACHE``, else ``$XDG_CACHE_HOME/derain-edge``, else ``~/.cache/derain-edge``; files are named
by the weights' sha256 and a hash of the exporting libraries' versions (torch, onnx, onnxscript, onnxslim, the
opset) and written atomically; a ``.meta.json`` beside each records the ONNX's own sha256, checked on every load
(a damaged file is exported again).

Threads (``default_threads``): the cores nobody else is using — min(physical cores, CPUs this process may run on,
the cgroup CPU quota) minus the 1-minute load average, rounded, at least 1 (``$DERAIN_EDGE_THREADS`` overrides).
An oversubscribed OpenMP pool does not degrade gracefully: on a 2-core box with both cores busy, PyTorch at two
threads took 1,056 ms per 64×48 frame against 5 ms at one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from derain_edge.files import sha256_file

from .errors import BackendError

log = logging.getLogger(__name__)

OPSET = 20
EXPORT_PACKAGES = ("torch", "onnx", "onnxscript", "onnxslim")
ONNX_ENGINES = ("onnxruntime", "openvino", "opencv")


# threads: derain_edge.engines.threads (below the engines, which take their default from it); re-exported here
from derain_edge.engines.threads import available_cpus, default_threads, physical_cores, threads_reason  # noqa: E402,F401


# ------------------------------------------------------------------------------------------------ ONNX cache
def cache_dir() -> Path:
    env = os.environ.get("DERAIN_EDGE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base).expanduser() / "derain-edge"


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "-"


def export_versions() -> dict[str, str]:
    """Versions of what makes the ONNX (read from package metadata: importing onnxscript costs seconds)."""
    return {p: _version(p) for p in EXPORT_PACKAGES} | {"opset": str(OPSET)}


def _can_export() -> str | None:
    """None when the ONNX exporter's packages are installed, else what is missing."""
    from derain_edge.optional import importable

    missing = [m for m in ("onnx", "onnxscript", "onnxslim") if not importable(m)]
    return f"missing {', '.join(missing)} (pip install \"derain-edge[onnx]\")" if missing else None


@dataclass
class CachedOnnx:
    path: Path
    exported: bool  # made just now (False: found in the cache)


def _cache_key(weights: Path, net) -> tuple[str, str]:
    wsha = sha256_file(weights)
    vers = json.dumps(export_versions(), sort_keys=True)
    vhash = hashlib.sha256(f"{type(net).__module__}.{type(net).__qualname__}|{vers}".encode()).hexdigest()
    return wsha, vhash


def _valid(path: Path) -> bool:
    meta = path.with_name(path.name + ".meta.json")
    if not (path.is_file() and meta.is_file()):
        return False
    try:
        want = json.loads(meta.read_text())["onnx_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return sha256_file(path) == want


def _write_meta(path: Path, **info) -> None:
    from derain_edge.files import atomic_write_text

    meta = {"onnx_sha256": sha256_file(path), **info}
    atomic_write_text(path.with_name(path.name + ".meta.json"), json.dumps(meta, indent=2) + "\n")


def cached_onnx(net, weights: str | Path, name: str = "lpnet", precision: str = "fp32") -> CachedOnnx:
    """The FP32 (or INT8 Q/DQ) dynamic-size ONNX of `net` loaded from `weights`, exported on first use."""
    from export.onnx_export import torch_to_onnx

    weights = Path(weights)
    wsha, vhash = _cache_key(weights, net)
    folder = cache_dir() / "onnx"
    stem = f"{name}-{wsha[:16]}-{vhash[:12]}"
    fp32 = folder / f"{stem}_fp32.onnx"
    made = False
    if not _valid(fp32):
        log.info("first use of these weights: exporting %s to ONNX once (cached in %s)", weights.name, folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch_to_onnx(net, fp32, opset=OPSET)
            _write_meta(fp32, weights=str(weights), weights_sha256=wsha, versions=export_versions(), precision="fp32")
        except OSError as e:
            raise BackendError(f"cannot write the ONNX cache in {folder} ({e}); set DERAIN_EDGE_CACHE to a "
                               "writable folder") from e
        made = True
    if precision != "int8":
        return CachedOnnx(fp32, made)
    int8 = folder / f"{stem}_int8_qdq.onnx"
    if not _valid(int8):
        from export.qdq import quantize_qdq

        from calibration.build import synthetic

        log.info("quantizing to INT8 Q/DQ once (8 synthetic rainy scenes as calibration; cached in %s)", folder)
        quantize_qdq(fp32, int8, synthetic(8, (240, 320), seed=100).data)
        _write_meta(int8, weights=str(weights), weights_sha256=wsha, versions=export_versions(), precision="int8",
                    calibration="8 synthetic rainy scenes (calibration.build.synthetic, seed 100)")
        made = True
    return CachedOnnx(int8, made)


# ------------------------------------------------------------------------------------------------ engine choice
def _ort_has_gpu() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def _torch_cuda(device) -> bool:
    if device not in (None, "auto") and not str(device).startswith("cuda"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def engine_order(precision: str = "fp32", device: str | None = None) -> list[str]:
    """Backends to try, fastest first, for this machine and precision."""
    if device is not None and str(device).startswith("cpu"):
        gpu = []
    elif _ort_has_gpu():
        gpu = ["onnxruntime"]
    elif _torch_cuda(device):
        gpu = ["pytorch"]
    else:
        gpu = []
    if precision == "bf16":
        return ["openvino"]
    if precision == "int8":
        return ["openvino", "onnxruntime"]
    if precision == "fp16":
        return ["pytorch"]  # CUDA only (the PyTorch backend says so on a CPU)
    order = gpu + ["onnxruntime", "openvino", "opencv", "pytorch"]
    return list(dict.fromkeys(order))


def fast_backend(net, weights: str | Path, backend: str = "auto", *, precision: str | None = None,
                 device: str | None = None, threads: int | None = None, name: str | None = None):
    """A Backend for `net` (loaded from `weights`): `backend` "auto" tries engine_order(); an ONNX engine name
    ("onnxruntime", "openvino", "opencv") runs the cached export in that engine."""
    from . import backends as B
    from .open_onnx import open_onnx as _onnx

    precision = precision or "fp32"
    name = name or type(net).__name__.lower()
    order = engine_order(precision, device) if backend == "auto" else [backend]
    tried: list[str] = []
    chosen_threads = int(threads) if threads else default_threads()
    why_no_onnx = _can_export()
    for engine in order:
        if engine == "pytorch":
            if precision not in ("fp32", "fp16"):
                continue
            be = B.TorchBackend(net, device=device, precision=precision, threads=chosen_threads,
                                source=str(weights))
            be.threads = chosen_threads
            be.why = _why(tried)
            return be
        if why_no_onnx:
            tried.append(f"{engine}: {why_no_onnx}")
            continue
        try:
            onnx = cached_onnx(net, weights, name, "int8" if precision == "int8" else "fp32")
        except Exception as e:  # the exporter raises many types; an unwritable cache too; PyTorch still runs
            why_no_onnx = str(e) if isinstance(e, BackendError) else \
                f"the ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            log.warning("%s; running PyTorch", why_no_onnx)
            tried.append(f"{engine}: {why_no_onnx}")
            continue
        sidecar = _sidecar_of(onnx.path, "int8" if precision == "int8" else "fp32")
        if engine == "openvino" and precision == "bf16":
            if not _ov_supports("bf16"):
                tried.append("openvino: this CPU has no native bf16 (AVX512-BF16 or AMX)")
                continue
        try:
            be = _onnx(onnx.path, sidecar, engine, chosen_threads,
                       precision if precision in ("bf16", "int8") else None)
        except BackendError as e:
            if backend != "auto":
                raise
            tried.append(f"{engine}: {str(e).splitlines()[0]}")
            log.info("auto engine: skipping %s (%s)", engine, e)
            continue
        be.threads = chosen_threads
        be.why = _why(tried)
        be.exported = onnx.exported
        return be
    raise BackendError(f"no engine can run {name} at {precision}: " + "; ".join(tried)
                       + ("" if precision == "fp32" else " (precision='fp32' runs everywhere)"))


def _sidecar_of(path: Path, precision: str) -> dict:
    """The in-memory sidecar of a cached export: torch_to_onnx's contract (NCHW float32 RGB [0, 1], dynamic H×W),
    which the engines assume without one; not read from the graph: importing onnx costs seconds on a busy CPU."""
    return {"sizes": "dynamic", "precision": precision}


def _ov_supports(precision: str) -> bool:
    try:
        from .backends import OpenVinoBackend

        return OpenVinoBackend.supports(precision)
    except Exception:  # no openvino, or a plugin that cannot answer
        return False


def _why(tried: list[str]) -> str:
    return "skipped " + "; ".join(tried) if tried else ""


def describe(engine) -> str:
    """One line for the start of a run: engine, threads and how it was chosen."""
    threads = getattr(engine, "threads", None)
    parts = [engine.label]
    if threads:
        parts.append(threads_reason(threads))
    if getattr(engine, "exported", False):
        parts.append("ONNX exported just now and cached")
    if getattr(engine, "why", ""):
        parts.append(engine.why)
    return ", ".join(parts)
