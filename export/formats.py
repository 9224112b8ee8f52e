"""The one table of export formats (after Ultralytics' ``export_formats``): every flag and message derives from it.

A row says what a target writes, which aliases name it, which precisions it allows and exports by default, whether
it keeps dynamic H×W, which pip extra it needs, and which function builds it (imported lazily, so ``--help`` and
argument errors never import TensorFlow or coremltools).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass


from derain_edge import optional as _optional
from derain_edge.optional import (EXTRA_OF, ONNX2TF, ONNX2TF_COMMAND, TFLITE_STACK, MissingDependency,  # noqa: F401
                                  install_command, install_hint, require)


@dataclass(frozen=True)
class Format:
    name: str                       # --target value
    aliases: tuple[str, ...]        # other accepted spellings
    suffix: str                     # artifact suffix ("/" for a folder bundle)
    precisions: tuple[str, ...]     # allowed --precision values
    default_precisions: tuple[str, ...]  # exported when --precision is not given
    dynamic: bool                   # keeps dynamic H×W (otherwise one artifact per --size)
    extra: str                      # pip extra that provides the backends
    function: str                   # "module:function" building it, imported lazily: export_<target>(model, job)
    modules: tuple[str, ...]        # modules the function needs (checked up front → install hint)
    description: str
    qdq: bool = False               # writes an INT8 Q/DQ ONNX: a missed INT8 limit is recovered by keeping the
                                    # sensitive nodes in float (export.sensitivity, ExportJob.nodes_to_exclude)
    calibrated: tuple[str, ...] = ("int8",)  # precisions that need calibration frames (CoreML int8 is weights-only)


FORMATS: tuple[Format, ...] = (
    Format("onnx", ("ort", "onnxruntime"), ".onnx", ("fp32", "fp16", "int8"), ("fp32",), True, "onnx",
           "export.onnx_export:export_onnx", ("onnx", "onnxscript", "onnxslim", "onnxruntime"),
           "ONNX (opset 20), dynamic H×W, parity in onnxruntime", qdq=True),
    Format("jetson", ("trt", "engine", "tensorrt"), "/", ("fp16", "int8"), ("fp16", "int8"), True, "onnx",
           "export.jetson:export_jetson", ("onnx", "onnxscript", "onnxslim", "onnxruntime"),
           "Jetson/TensorRT bundle: FP16 ONNX, INT8 Q/DQ ONNX, calibration cache, build_engine.sh", qdq=True),
    Format("coreml", ("ios", "mlpackage", "mlmodel", "apple"), ".mlpackage", ("fp32", "fp16", "int8"), ("fp16",),
           False, "coreml", "export.coreml:export_coreml", ("coremltools",),
           "CoreML ML program, ImageType I/O, enumerated camera sizes", calibrated=()),
    Format("tflite", ("lite", "litert", "tfl", "android"), ".tflite", ("fp32", "fp16", "int16x8", "int8"),
           ("fp16", "int16x8"), False, "tflite", "export.tflite:export_tflite",
           ("onnx", "onnxscript", "onnxslim", "onnxruntime", "tensorflow", "onnx2tf", "ai_edge_litert"),
           "TFLite via onnx2tf + TFLiteConverter, one file per size, parity in LiteRT",
           calibrated=("int16x8", "int8")),
)

# Server-side formats: named explicitly, not part of `--target all` (which means the edge artifacts above).
SERVER_FORMATS: tuple[Format, ...] = (
    Format("triton", ("tritonserver", "triton-repo", "deepstream"), "/", ("fp32", "fp16", "int8"), ("fp32",), True,
           "onnx", "export.triton:export_triton", ("onnx", "onnxscript", "onnxslim", "onnxruntime"),
           "Triton model repository: config.pbtxt + model.onnx with dynamic batching, TensorRT plan route "
           "(docs/serving.md)", qdq=True),
)

BY_NAME = {f.name: f for f in (*FORMATS, *SERVER_FORMATS)}
ALIASES = {alias: f.name for f in (*FORMATS, *SERVER_FORMATS) for alias in (f.name, *f.aliases)}
ALL_PRECISIONS = ("fp32", "fp16", "int8", "int16x8")
# what a sidecar's "format" names: the file kind the runtime opens (a Jetson bundle holds ONNX and, once built, engines)
ARTIFACT_FORMATS = ("onnx", "engine", "mlpackage", "tflite")
PRECISION_ALIASES = {"16x8": "int16x8", "w8a16": "int16x8", "a16w8": "int16x8", "float32": "fp32",
                     "float16": "fp16", "half": "fp16", "float": "fp32"}
# Accuracy-cost limits (issue 3): max PSNR-Y drop against ground truth vs FP32 PyTorch, in dB (the exporter always
# has ground truth: --val, or synthetic pairs). fp32 must also be near-exact: ≥ 60 dB PSNR-Y against PyTorch's output.
MAX_DROP_DB = {"fp32": 0.01, "fp16": 0.05, "int16x8": 0.1, "int8": 0.3}
MIN_PSNR_VS_FP32_DB = {"fp32": 60.0}
# camera sizes exported by fixed-size targets when --size is not given (H, W)
DEFAULT_SIZES = ((480, 640), (720, 1280), (1080, 1920))


def suggest(word: str, choices) -> str:
    """' (did you mean 'x'?)' or ''."""
    close = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_target(name: str) -> list[Format]:
    """A --target value (name, alias or 'all') → the formats it means; ValueError with a suggestion otherwise."""
    key = str(name).strip().lower()
    if key == "all":
        return list(FORMATS)
    if key in ALIASES:
        return [BY_NAME[ALIASES[key]]]
    raise ValueError(f"unknown target '{name}'{suggest(key, [*ALIASES, 'all'])}; "
                     f"choose from: {', '.join(f.name for f in (*FORMATS, *SERVER_FORMATS))}, all")


def resolve_precision(fmt: Format, precision: str | None) -> tuple[str, ...]:
    """--precision for one format: None → its defaults; an unsupported one → ValueError naming what it allows."""
    if precision is None:
        return fmt.default_precisions
    p = str(precision).strip().lower().replace("_", "").replace("-", "")
    p = PRECISION_ALIASES.get(p, p)
    if p not in ALL_PRECISIONS:
        close = suggest(p, [*ALL_PRECISIONS, *PRECISION_ALIASES])
        for alias, name in PRECISION_ALIASES.items():  # suggest the canonical name, not the alias
            close = close.replace(f"'{alias}'", f"'{name}'")
        raise ValueError(f"unknown precision '{precision}'{close}; "
                         f"choose from: {', '.join(ALL_PRECISIONS)}")
    if p not in fmt.precisions:
        raise ValueError(f"target {fmt.name} does not support precision {p}; it allows: {', '.join(fmt.precisions)}")
    return (p,)


def load_function(fmt: Format):
    """The target's export function; MissingDependency when its module (or a backend) is not available."""
    missing = [m for m in fmt.modules if not _optional.importable(m)]
    if missing:  # all of them named at once, with the one command that installs them
        raise MissingDependency(_optional.missing_message(missing, fmt.extra, set(missing)))
    for module in fmt.modules:
        require(module, fmt.extra)
    mod_name, func_name = fmt.function.split(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name == mod_name:
            raise TargetUnavailable(f"target {fmt.name} is not available in this version of derain-edge "
                                    f"({mod_name} is not built yet)") from e
        raise
    func = getattr(module, func_name, None)
    if func is None:
        raise TargetUnavailable(f"target {fmt.name} is not available: {mod_name} has no {func_name}()")
    return func


class TargetUnavailable(RuntimeError):
    """The target's implementation is not part of this installation."""


def table_markdown() -> str:
    """The format table as Markdown (docs/export.md and `derain-export --formats`)."""
    rows = ["| target | aliases | artifact | precisions (default) | dynamic H×W | extra |",
            "|---|---|---|---|---|---|"]
    for f in FORMATS:
        precisions = ", ".join(f"**{p}**" if p in f.default_precisions else p for p in f.precisions)
        suffix = "folder" if f.suffix == "/" else f.suffix
        rows.append(f"| {f.name} | {', '.join(f.aliases)} | {suffix} | {precisions} | {'yes' if f.dynamic else 'no'} "
                    f"| `{install_hint(f.extra)}` |")
    return "\n".join(rows)
