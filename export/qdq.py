"""Explicit-quantization INT8 ONNX (Q/DQ) in the form TensorRT accepts, from onnxruntime's static quantizer.

Why Q/DQ: TensorRT deprecated implicit calibrators in 10.1 and removed them in 11; a Q/DQ ONNX carries its own
scales and builds the same INT8 engine on every TensorRT ≥ 8.6. TensorRT's rules (and ORT's options that meet them):
symmetric int8 for activations and weights (``ActivationSymmetric``, ``WeightSymmetric``, ``QInt8``/``QInt8``) so every
zero-point is 0; per-channel weight scales (``per_channel=True``); biases left in float (``QuantizeBias=False``:
TensorRT fuses float biases itself and rejects int32 DequantizeLinear); Q/DQ only in front of the convolutions
(Conv, ConvTranspose), which is where TensorRT's fusions pick them up. ``quant_pre_process`` is skipped: its symbolic
shape inference fails on LPNet's dynamic crops (docs/toolchain.md §2) and the graph is already simplified.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from derain_edge.files import atomic_path

QUANT_OPS = ("Conv", "ConvTranspose")
METHODS = ("minmax", "percentile", "entropy")


def _calibration_reader(data: np.ndarray, input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(range(len(data)))

        def get_next(self):
            i = next(self._it, None)
            return None if i is None else {input_name: np.ascontiguousarray(data[i:i + 1], dtype=np.float32)}

        def rewind(self):
            self._it = iter(range(len(data)))

    return Reader()


def quantize_qdq(src: str | Path, dst: str | Path, calib: np.ndarray, method: str = "minmax",
                 nodes_to_exclude: list[str] | None = None, percentile: float = 99.999) -> Path:
    """INT8 Q/DQ ONNX of the FP32 ONNX `src`, calibrated on `calib` (N×3×H×W float32 [0,1]); written atomically."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim != 4 or calib.shape[1] != 3 or len(calib) == 0:
        raise ValueError(f"calibration data must be N×3×H×W with N ≥ 1, got shape {calib.shape}")
    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} is not one of {METHODS}")
    proto = onnx.load(str(src))
    input_name = proto.graph.input[0].name
    calib_method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                    "entropy": CalibrationMethod.Entropy}[method]
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    logging.getLogger("root").setLevel(logging.ERROR)  # ORT's "Please consider to run pre-processing" warning
    with tempfile.TemporaryDirectory(prefix="derain-qdq-") as tmpdir, atomic_path(dst) as tmp:
        quantize_static(
            str(src), str(tmp), _calibration_reader(calib, input_name),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            per_channel=True, op_types_to_quantize=list(QUANT_OPS), nodes_to_exclude=list(nodes_to_exclude or []),
            calibrate_method=calib_method, extra_options={**extra, "CalibTensorRangeSymmetric": True},
            calibration_providers=["CPUExecutionProvider"],
        )
        del tmpdir
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    return Path(dst)


def qdq_report(path: str | Path) -> dict:
    """What a Q/DQ model holds: Q/DQ counts, zero-point values, which ops are fed by DequantizeLinear, opset."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    zero_points, counts = [], {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for n in proto.graph.node:
        if n.op_type in counts:
            counts[n.op_type] += 1
            if len(n.input) > 2 and n.input[2] in inits:
                zero_points.append(inits[n.input[2]])
    fed = {}
    for n in proto.graph.node:
        if n.op_type in QUANT_OPS:
            src = [producers.get(i) for i in n.input[:2]]
            fed[n.name] = all(s is not None and s.op_type == "DequantizeLinear" for s in src)
    zp_dtypes = sorted({str(z.dtype) for z in zero_points})
    return {
        "opset": next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "quantize": counts["QuantizeLinear"], "dequantize": counts["DequantizeLinear"],
        "zero_points_all_zero": bool(zero_points) and all(not np.any(z) for z in zero_points),
        "zero_point_dtypes": zp_dtypes,
        "quantized_ops": sum(fed.values()), "float_ops": sorted(k for k, v in fed.items() if not v),
    }


def activation_scales(path: str | Path) -> dict[str, float]:
    """tensor name → scale of every per-tensor QuantizeLinear of the model (the activations' calibration)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1:
            out[n.input[0]] = float(inits[n.input[1]].reshape(()))
    return out
