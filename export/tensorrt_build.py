"""Build (and cache) a TensorRT engine from a derain-edge ONNX on the device itself: engines are not portable.

Self-contained on purpose (stdlib + ``tensorrt`` only): the Jetson bundle ships a copy as ``build_engine.py``, so a
device with JetPack's TensorRT but without derain-edge can run it::

    python3 build_engine.py lpnet_fp16.onnx --precision fp16 --cache engines/
    python3 build_engine.py lpnet_int8_qdq.onnx --precision int8 --cache engines/

Engines are cached under a name carrying everything that makes an engine invalid when it changes — the TensorRT
version, the GPU, the precision, the optimisation profile and the ONNX file's sha256 — e.g.
``lpnet_fp16__fp16__trt10.3.0__orin__p3f2a9c1d__9b1e…c4.engine``. A cached engine is reused only if its name matches
and its recorded sha256 (``<engine>.json``) still matches its bytes; anything else is rebuilt, and older engines of the
same ONNX stem and precision are removed. Writes are atomic (temp file + rename).

API used (TensorRT Python API, documented for 10.x and 11.x): ``trt.Builder``, ``builder.create_network``,
``trt.OnnxParser``, ``builder.create_builder_config``, ``BuilderFlag.FP16/INT8`` (TensorRT 10, weakly typed only),
``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, ``builder.create_optimization_profile``,
``builder.build_serialized_network``. TensorRT ≥ 11 is always strongly typed: precision then comes from the ONNX
(FP16 ONNX, Q/DQ ONNX), not from flags.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")
# dynamic H×W profile (H, W): smallest frame, the one tuned for, largest
DEFAULT_PROFILE = {"min": (16, 16), "opt": (480, 640), "max": (1080, 1920)}
TENSORRT_MISSING = ("TensorRT is not installed: it ships with JetPack on Jetson (python3-libnvinfer) and comes from "
                    "NVIDIA's package index on x86 GPU machines (pip install \"derain-edge[tensorrt]\"); PyPI alone "
                    "only has download stubs")


class EngineBuildError(RuntimeError):
    """TensorRT is missing or refused the network; the message carries the parser/builder errors."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slug(text: str, limit: int = 32) -> str:
    """'NVIDIA Jetson AGX Orin Developer Kit' → 'nvidia-jetson-agx-orin-developer' (file-name safe, bounded)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return (s[:limit].rstrip("-")) or "unknown"


def gpu_name() -> str:
    """The GPU's marketing name: nvidia-smi on dGPU machines, the device-tree model on Jetson (no nvidia-smi on
    JetPack ≤ 5), else "unknown-gpu"."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip().splitlines()
            if out and out[0].strip():
                return out[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    model = Path("/proc/device-tree/model")
    try:
        text = model.read_bytes().rstrip(b"\x00").decode("ascii", "replace").strip()
        if text:
            return text
    except OSError:
        pass
    return "unknown-gpu"


def profile_tag(profile: dict | None) -> str:
    """A short stable tag of an optimisation profile (so engines built for other shapes are not reused)."""
    p = profile or DEFAULT_PROFILE
    text = json.dumps({k: list(p[k]) for k in ("min", "opt", "max")}, sort_keys=True)
    return "p" + hashlib.sha256(text.encode()).hexdigest()[:8]


def engine_cache_name(onnx_path: str | Path, precision: str, trt_version: str, gpu: str,
                      profile: dict | None = None, onnx_sha256: str | None = None) -> str:
    """``<stem>__<precision>__trt<version>__<gpu>__<profile>__<sha256 of the ONNX, 16 hex>.engine``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    digest = onnx_sha256 or sha256_file(onnx_path)
    version = re.sub(r"[^0-9a-zA-Z.]+", "", str(trt_version)) or "unknown"
    return f"{onnx_path.stem}__{precision}__trt{version}__{slug(gpu)}__{profile_tag(profile)}__{digest[:16]}.engine"


def parse_cache_name(name: str) -> dict:
    """Inverse of engine_cache_name (for listing caches and for tests)."""
    m = re.fullmatch(r"(?P<stem>.+)__(?P<precision>fp32|fp16|int8)__trt(?P<trt>[0-9a-zA-Z.]+)__(?P<gpu>[a-z0-9-]+)"
                     r"__(?P<profile>p[0-9a-f]{8})__(?P<sha>[0-9a-f]{16})\.engine", Path(name).name)
    if not m:
        raise ValueError(f"{name} is not a derain-edge engine cache name")
    return m.groupdict()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_engine(cache_dir: str | Path, name: str) -> Path | None:
    """The cached engine called `name` if it exists and its bytes still match its record; else None."""
    engine = Path(cache_dir) / name
    record = engine.with_name(engine.name + ".json")
    if not engine.is_file() or not record.is_file():
        return None
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("engine_sha256") != sha256_file(engine):
        return None  # truncated or overwritten: rebuild
    return engine


def store_engine(cache_dir: str | Path, name: str, engine_bytes: bytes, meta: dict) -> Path:
    """Writes the engine and its record atomically, then drops stale engines of the same stem and precision."""
    cache_dir = Path(cache_dir)
    engine = cache_dir / name
    _atomic_write(engine, engine_bytes)
    record = {**meta, "engine": name, "engine_sha256": hashlib.sha256(engine_bytes).hexdigest()}
    _atomic_write(engine.with_name(name + ".json"), (json.dumps(record, indent=2) + "\n").encode())
    mine = parse_cache_name(name)
    for other in cache_dir.glob("*.engine"):
        if other.name == name:
            continue
        try:
            info = parse_cache_name(other.name)
        except ValueError:
            continue
        if info["stem"] == mine["stem"] and info["precision"] == mine["precision"]:
            other.unlink(missing_ok=True)
            other.with_name(other.name + ".json").unlink(missing_ok=True)
    return engine


def _import_tensorrt():
    try:
        import tensorrt as trt  # noqa: PLC0415 - only on the device
    except ImportError as e:
        raise EngineBuildError(f"{TENSORRT_MISSING} ({e})") from e
    return trt


def build_serialized(onnx_path: str | Path, precision: str, profile: dict | None = None,
                     workspace_mb: int = 1024) -> tuple[bytes, str]:
    """Parses the ONNX and builds a serialized engine with the TensorRT Python API; returns (bytes, trt version)."""
    trt = _import_tensorrt()
    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 11 is strongly typed always; on 10 we use strong typing for Q/DQ models too (precision from the graph)
    strongly_typed = major >= 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # layers Q/DQ leaves in float run in FP16
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # required on TensorRT 10 to honour the Q/DQ nodes
    p = profile or DEFAULT_PROFILE
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        if any(d < 0 for d in shape):
            batch = shape[0] if shape[0] > 0 else 1
            opt_profile.set_shape(tensor.name, (batch, 3, *p["min"]), (batch, 3, *p["opt"]), (batch, 3, *p["max"]))
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    return bytes(serialized), trt.__version__


def build_engine(onnx_path: str | Path, precision: str, cache_dir: str | Path, profile: dict | None = None,
                 rebuild: bool = False, gpu: str | None = None) -> Path:
    """The cached engine for (ONNX, precision, TensorRT version, GPU, profile), built now if missing or stale."""
    trt = _import_tensorrt()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    gpu = gpu or gpu_name()
    digest = sha256_file(onnx_path)
    name = engine_cache_name(onnx_path, precision, trt.__version__, gpu, profile, digest)
    if not rebuild:
        hit = cached_engine(cache_dir, name)
        if hit is not None:
            return hit
    data, version = build_serialized(onnx_path, precision, profile)
    meta = {"onnx": onnx_path.name, "onnx_sha256": digest, "precision": precision, "tensorrt": version, "gpu": gpu,
            "profile": {k: list(v) for k, v in (profile or DEFAULT_PROFILE).items()}}
    return store_engine(cache_dir, name, data, meta)


def _hw(text: str) -> tuple[int, int]:
    """'640x480' (W×H, width first like every derain-edge command) → (480, 640)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)  # standalone on the device: no derain_edge import
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT like 640x480, got {text!r}")
    return int(m.group(2)), int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="build_engine.py", description="Build and cache a TensorRT engine on this device.")
    ap.add_argument("onnx", type=Path)
    ap.add_argument("--precision", choices=PRECISIONS, required=True)
    ap.add_argument("--cache", type=Path, default=Path("engines"), help="engine cache folder (default: engines/)")
    ap.add_argument("--min", type=_hw, default=DEFAULT_PROFILE["min"], help="smallest WxH, width first (default 16x16)")
    ap.add_argument("--opt", type=_hw, default=DEFAULT_PROFILE["opt"], help="WxH to tune for (default 640x480)")
    ap.add_argument("--max", type=_hw, default=DEFAULT_PROFILE["max"], help="largest WxH (default 1920x1080)")
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached engine")
    args = ap.parse_args(argv)
    try:
        path = build_engine(args.onnx, args.precision, args.cache, {"min": args.min, "opt": args.opt, "max": args.max},
                            rebuild=args.rebuild)
    except (EngineBuildError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
