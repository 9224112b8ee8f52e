"""The `jetson` target: a folder to copy to the device, from which TensorRT builds the engine there.

Bundle ``<stem>_jetson/``:

* ``<stem>_fp16.onnx`` — FP16 weights and compute behind float32 I/O. Chosen over "FP32 ONNX + ``--fp16``" because
  one file then works on both TensorRT 10 (``--fp16``, or strongly typed) and TensorRT 11, which is always strongly
  typed and ignores precision flags: an FP32 ONNX would silently build an FP32 engine there.
* ``<stem>_int8_qdq.onnx`` — explicit quantization (Q/DQ), ``export.qdq``: the only INT8 route on TensorRT 11 and the
  recommended one from 10.1.
* ``<stem>_fp32.onnx`` + ``<stem>_int8.calib.cache`` — the legacy implicit-calibration route for JetPack 6
  (TensorRT 10.3): ``TRT-100300-EntropyCalibration2`` header and one ``tensor: <hex of the float32 scale, big-endian>``
  line per float tensor of the FP32 ONNX; tensors the Q/DQ model quantizes carry exactly its scales.
* ``build_engine.sh`` (trtexec lines for TensorRT 10 and 11) and ``build_engine.py`` (a copy of
  ``export.tensorrt_build``: Python API builder with an engine cache).

Engines themselves are never built here (no GPU, no TensorRT on PyPI); parity and cost are measured by running the
same ONNX files in onnxruntime (CPU), which the sidecar states.
"""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np

from derain_edge.files import atomic_path, atomic_write_text

from .artifact import Exported
from .onnx_export import fp32_onnx, onnx_io, opset_of, to_fp16, versions
from .qdq import activation_scales, qdq_report, quantize_qdq
from .tensorrt_build import DEFAULT_PROFILE

LEGACY_TRT_VERSION = 100300  # TensorRT 10.3.0 (JetPack 6.x): getInferLibVersion() = major*10000 + minor*100 + patch
CACHE_ALGORITHM = "EntropyCalibration2"
PARITY_NOTE = "onnxruntime CPU on the same ONNX; TensorRT's kernels round differently — check on the device"

# ----------------------------------------------------------------------------------- legacy calibration cache
def float_tensors(proto) -> list[str]:
    """Names of every float tensor of the graph (its input and every node output), in graph order."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    names = [i.name for i in proto.graph.input]
    for node in proto.graph.node:
        names.extend(o for o in node.output if o)
    return [n for n in names if types.get(n) == onnx.TensorProto.FLOAT]


def tensor_amax(fp32_path: str | Path, calib: np.ndarray) -> dict[str, float]:
    """max |x| of every float tensor of the FP32 ONNX over the calibration set (ORT with every tensor as an output)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(fp32_path))
    names = float_tensors(proto)
    outputs = {o.name for o in proto.graph.output}
    for n in names:
        if n not in outputs and n != proto.graph.input[0].name:
            proto.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in session.get_outputs()]
    input_name = proto.graph.input[0].name
    amax = {n: 0.0 for n in names}
    for i in range(len(calib)):
        x = np.ascontiguousarray(calib[i:i + 1], dtype=np.float32)
        amax[input_name] = max(amax[input_name], float(np.abs(x).max()))
        for name, value in zip(out_names, session.run(out_names, {input_name: x})):
            if name in amax:
                amax[name] = max(amax[name], float(np.abs(value).max()))
    return amax


def calibration_cache_text(amax: dict[str, float], qdq_scales: dict[str, float] | None = None,
                           version: int = LEGACY_TRT_VERSION) -> str:
    """TensorRT's calibration-cache text: the header, then ``name: <big-endian float32 scale in hex>`` per tensor.
    scale = amax / 127 (symmetric int8), or the Q/DQ model's own scale for the tensors it quantizes."""
    lines = [f"TRT-{int(version)}-{CACHE_ALGORITHM}"]
    for name, value in amax.items():
        scale = (qdq_scales or {}).get(name, max(value, 1e-8) / 127.0)
        lines.append(f"{name}: {struct.pack('>f', np.float32(scale)).hex()}")
    return "\n".join(lines) + "\n"


def parse_calibration_cache(text: str) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}) of a calibration-cache text; ValueError on a malformed file."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache (first line must be 'TRT-<version>-<algorithm>')")
    scales = {}
    for ln in lines[1:]:
        name, sep, hexval = ln.rpartition(": ")
        if not sep or len(hexval) != 8:
            raise ValueError(f"malformed calibration-cache line: {ln!r}")
        scales[name] = struct.unpack(">f", bytes.fromhex(hexval))[0]
    return lines[0], scales


# ------------------------------------------------------------------------------------------ build_engine.sh
def _shape(hw) -> str:
    return f"1x3x{hw[0]}x{hw[1]}"


def build_script(stem: str, input_name: str, profile: dict | None = None) -> str:
    """build_engine.sh: trtexec lines for TensorRT 10 (precision flags, legacy cache) and 11 (strongly typed)."""
    p = profile or DEFAULT_PROFILE
    shapes = (f"--minShapes={input_name}:{_shape(p['min'])} --optShapes={input_name}:{_shape(p['opt'])} "
              f"--maxShapes={input_name}:{_shape(p['max'])}")
    return f"""#!/usr/bin/env bash
# Build TensorRT engines for {stem} ON THE DEVICE (engines are tied to the GPU and the TensorRT version).
# Usage: ./build_engine.sh [fp16|int8|int8-calib|all]   (default: all)   TRT_MAJOR=10|11 overrides the detection.
# Python alternative with an engine cache: python3 build_engine.py {stem}_fp16.onnx --precision fp16
set -euo pipefail
cd "$(dirname "$0")"
WHAT="${{1:-all}}"
TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}}"
SHAPES="{shapes}"
if [ -z "${{TRT_MAJOR:-}}" ]; then
  TRT_MAJOR="$(python3 -c 'import tensorrt; print(tensorrt.__version__.split(".")[0])' 2>/dev/null || true)"
fi
if [ -z "$TRT_MAJOR" ]; then
  TRT_MAJOR="$("$TRTEXEC" --help 2>&1 | sed -n 's/.*TensorRT v\\([0-9]*\\)[0-9][0-9][0-9][0-9].*/\\1/p' | head -n1)"
fi
TRT_MAJOR="${{TRT_MAJOR:-10}}"
echo "TensorRT major version: $TRT_MAJOR (trtexec: $TRTEXEC)"

if [ "$TRT_MAJOR" -ge 11 ]; then
  # TensorRT 11: always strongly typed, no --fp16/--int8 — precision comes from the ONNX itself.
  if [ "$WHAT" = fp16 ] || [ "$WHAT" = all ]; then
    "$TRTEXEC" --onnx={stem}_fp16.onnx --stronglyTyped $SHAPES --saveEngine={stem}_fp16.engine
  fi
  if [ "$WHAT" = int8 ] || [ "$WHAT" = all ]; then
    "$TRTEXEC" --onnx={stem}_int8_qdq.onnx --stronglyTyped $SHAPES --saveEngine={stem}_int8.engine
  fi
  if [ "$WHAT" = int8-calib ]; then
    echo "TensorRT 11 has no implicit calibration; use: $0 int8 (Q/DQ ONNX)" >&2; exit 2
  fi
else
  # TensorRT 10 (JetPack 6 ships 10.3): weakly typed, precision flags.
  if [ "$WHAT" = fp16 ] || [ "$WHAT" = all ]; then
    "$TRTEXEC" --onnx={stem}_fp16.onnx --fp16 $SHAPES --saveEngine={stem}_fp16.engine
  fi
  if [ "$WHAT" = int8 ] || [ "$WHAT" = all ]; then
    # explicit quantization: --int8 makes TensorRT honour the Q/DQ nodes, --fp16 lets the rest run in FP16
    "$TRTEXEC" --onnx={stem}_int8_qdq.onnx --int8 --fp16 $SHAPES --saveEngine={stem}_int8.engine
  fi
  if [ "$WHAT" = int8-calib ]; then
    # legacy implicit INT8 (deprecated since 10.1): FP32 ONNX + calibration cache
    "$TRTEXEC" --onnx={stem}_fp32.onnx --int8 --fp16 --calib={stem}_int8.calib.cache $SHAPES \\
      --saveEngine={stem}_int8_calib.engine
  fi
fi
"""


def _profile_from_sizes(sizes) -> dict:
    if not sizes:
        return dict(DEFAULT_PROFILE)
    areas = sorted((tuple(s) for s in sizes), key=lambda s: s[0] * s[1])
    return {"min": (min(16, areas[0][0]), min(16, areas[0][1])), "opt": tuple(sizes[0]), "max": areas[-1]}


def _support_files(bundle: Path, stem: str, input_name: str, profile: dict) -> None:
    script = bundle / "build_engine.sh"
    atomic_write_text(script, build_script(stem, input_name, profile))
    script.chmod(0o755)
    src = Path(__file__).with_name("tensorrt_build.py")
    with atomic_path(bundle / "build_engine.py") as tmp:
        shutil.copyfile(src, tmp)


def export_jetson(model, job) -> list[Exported]:
    """Adds the ``job.precision`` artifact(s) to the bundle ``out_dir/<stem>_jetson`` and returns them (see module
    doc). ``job.options["method"]``: the INT8 calibration method (default minmax).

    The ONNX files keep dynamic H×W; ``job.sizes`` sets the TensorRT optimisation profile (min/opt/max) of the build
    lines.
    """
    from .formats import BY_NAME

    job.check(BY_NAME["jetson"])
    out_dir, stem, precision, sizes, calib = job.out_dir, job.stem, job.precision, job.sizes, job.calib
    nodes_to_exclude = list(job.nodes_to_exclude) or None
    method = job.options.get("method", "minmax")
    bundle = Path(out_dir) / f"{stem}_jetson"
    bundle.mkdir(parents=True, exist_ok=True)
    profile = _profile_from_sizes(sizes)
    base = fp32_onnx(model, job.opset, job.scratch())
    extra = {"bundle": bundle.name, "tensorrt_profile": {k: list(v) for k, v in profile.items()},
             "parity_backend": PARITY_NOTE, "build": "build_engine.sh or build_engine.py on the device"}
    if precision == "fp16":
        path = to_fp16(base, bundle / f"{stem}_fp16.onnx")
        extra["fp16_choice"] = "FP16 ONNX (float32 I/O): builds FP16 on TensorRT 10 (--fp16) and 11 (strongly typed)"
    else:
        path = quantize_qdq(base, bundle / f"{stem}_int8_qdq.onnx", calib, method=method,
                            nodes_to_exclude=nodes_to_exclude)
        report = qdq_report(path)
        legacy_onnx = bundle / f"{stem}_fp32.onnx"
        with atomic_path(legacy_onnx) as tmp:
            shutil.copyfile(base, tmp)
        cache = bundle / f"{stem}_int8.calib.cache"
        atomic_write_text(cache, calibration_cache_text(tensor_amax(base, calib), activation_scales(path)))
        extra.update({"quantization": {"format": "QDQ", "activations": "int8 symmetric per-tensor",
                                       "weights": "int8 symmetric per-channel", "bias": "float",
                                       "method": method, "nodes_excluded": list(nodes_to_exclude or []), **report},
                      "legacy_calibration": {"onnx": legacy_onnx.name, "cache": cache.name,
                                             "header": f"TRT-{LEGACY_TRT_VERSION}-{CACHE_ALGORITHM}"},
                      "companions": [legacy_onnx.name, cache.name]})  # removed with the artifact if it is rejected
    inputs, outputs = onnx_io(path)
    _support_files(bundle, stem, inputs[0]["name"], profile)
    extra["opset"] = opset_of(path)
    return [Exported(path=path, target="jetson", format="onnx", precision=precision, inputs=inputs, outputs=outputs,
                     sizes="dynamic", versions=versions(), extra=extra)]
