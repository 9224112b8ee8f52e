"""TFLite / LiteRT target: one ``.tflite`` per frame size, fp32, fp16, int16x8 or full int8, checked in LiteRT.

Route (docs/toolchain.md §5b–c): PyTorch → ONNX at a fixed size (``export.onnx_export.torch_to_onnx``) →
onnx2tf → the Keras model in memory (``disable_model_save``: onnx2tf's own SavedModel and its two .tflite files cost
~20 s per size and are not used) → ``tf.lite.TFLiteConverter.from_concrete_functions`` with per-precision options:

=========  ===========================================================  =========================================
precision  converter options                                             I/O
=========  ===========================================================  =========================================
fp32       none                                                          float32
fp16       Optimize.DEFAULT + supported_types=[float16] (fp16 weights)   float32 (weights dequantized at load/GPU)
int16x8    Optimize.DEFAULT + representative dataset +                   float32 (quantize/dequantize inside), so
           EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8   it is a drop-in for the fp32 file
int8       Optimize.DEFAULT + representative dataset + TFLITE_BUILTINS_  int8 in and out (what NPUs/DSPs and the
           INT8, inference_input/output_type=int8                        Edge TPU want); scale/zero-point recorded
=========  ===========================================================  =========================================

No converter here keeps a dynamic H×W (onnx2tf fails on it, and resizing a static file's input fails in XNNPACK),
hence one file per size. onnx2tf quirks handled here: it rewrites its input ``.onnx`` in place and downloads a sample
calibration array from GitHub for its own output check, so it runs in a temporary folder on a private copy with a
local stand-in array; its input becomes NHWC while the output layout varies, so layouts are read back from the
interpreter and recorded in the I/O entries.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from derain_edge.progress import progress

from derain_edge.files import atomic_write_bytes
from derain_edge.optional import require

from .artifact import Exported
from .formats import BY_NAME

log = logging.getLogger(__name__)

PRECISIONS = BY_NAME["tflite"].precisions     # the formats table's row (export.formats)
NEEDS_CALIB = BY_NAME["tflite"].calibrated
_ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf would download
# Representative dataset per size: the calibration frames at their own scale, packed side by side into frames of the
# artifact's size (``fit_calibration``), about CALIB_PIXELS pixels in all. The calibrator runs every frame through the
# float model op by op (~4 µs per pixel on 2 cores), and a fully convolutional net's activation ranges need pixels of
# real content, not upscaled copies: the same frames then calibrate every size.
CALIB_PIXELS = 4_000_000

class TFLiteExportError(ValueError):
    """Bad arguments or a failed conversion step, with the reason."""


def _require(module: str):
    return require(module, "tflite")


def fit_calibration(calib: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Representative frames at `size` as NHWC, built from the calibration frames at their own scale.

    Frames smaller than `size` are packed on a grid (as many as fit), the strips left at the right and bottom mirror
    the grid, and the last frame cycles back to the first frames; a frame larger than `size` in a side is
    centre-cropped there (one per frame). Why: rain and texture keep the scale the camera saw (an upscaled frame
    calibrates on blur), and every size sees the same pixels. About CALIB_PIXELS pixels in all, at least one frame."""
    h, w = size
    frames = np.clip(np.asarray(calib, np.float32).transpose(0, 2, 3, 1), 0.0, 1.0)
    fh, fw = min(frames.shape[1], h), min(frames.shape[2], w)
    y, x = (frames.shape[1] - fh) // 2, (frames.shape[2] - fw) // 2
    frames = frames[:, y:y + fh, x:x + fw]  # centre crop of the sides that are too large
    rows, cols = h // fh, w // fw
    per = rows * cols
    count = int(np.clip(round(CALIB_PIXELS / (h * w)), 1, -(-len(frames) // per)))
    out = np.empty((count, h, w, 3), np.float32)
    for i in range(count):
        cells = [frames[(i * per + k) % len(frames)] for k in range(per)]
        grid = np.concatenate([np.concatenate(cells[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)
        out[i] = np.pad(grid, ((0, h - grid.shape[0]), (0, w - grid.shape[1]), (0, 0)), mode="symmetric")
    return out


def unshare_conv_biases(onnx_path: Path) -> int:
    """Gives every Conv/ConvTranspose its own bias initializer; returns how many copies were made.

    Why: LPNet reuses one block's weights across its recursions (eq. 3), so the ONNX graph feeds one bias initializer
    to several convolutions. TFLite's int16x8 quantizer keeps such a bias as ONE int64 tensor quantized with the
    first consumer's input scale, and every later recursion (whose input scale differs) then adds a bias that is off
    by the ratio of the scales: 24–28 dB instead of > 60 dB on LPNet (docs/export_mobile.md). The int8 quantizer
    duplicates biases itself. Each copy is nudged by k float32 ulps so that no constant de-duplication can merge
    them again; a numerically irrelevant change (≤ 1e-7 relative).
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    inits = {i.name: i for i in proto.graph.initializer}
    seen: dict[str, int] = {}
    copies = 0
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 3 or node.input[2] not in inits:
            continue
        name = node.input[2]
        k = seen.get(name, 0)
        seen[name] = k + 1
        if k == 0:
            continue
        value = numpy_helper.to_array(inits[name]).astype(np.float32)
        for _ in range(k):
            value = np.nextafter(value, np.float32(np.inf), dtype=np.float32)
        copy = numpy_helper.from_array(value, f"{name}__use{k}")
        proto.graph.initializer.append(copy)
        node.input[2] = copy.name
        copies += 1
    if copies:
        onnx.save_model(proto, str(onnx_path))
    return copies


def split_int8_weights(onnx_path: Path, weight_names) -> int:
    """Runs each Conv/ConvTranspose with a listed weight as conv(x, W_hi) + conv(x, W_lo); returns how many. The
    names are a model's ``int8_sensitive_weights`` export hint (``derain_edge.registry``; LPNet's are measured in
    docs/export_mobile.md).

    Why: TFLite's int16x8 keeps 16-bit activations but 8-bit weights, and the converter's float fallback cannot be
    used for single ops there (the MLIR quantizer that takes a denylist writes int16 models LiteRT refuses to run:
    int32 biases in DEPTHWISE_CONV_2D, non-zero int16 zero points in CONV_2D). W_hi is W rounded to the per-output-
    channel symmetric int8 grid TFLite uses (so it quantizes exactly) and W_lo = W − W_hi is quantized on its own,
    ~254× finer scale: about 15-bit weights for these layers at the cost of one extra convolution and add each. In
    float the sum equals W (fp32 round-off only).
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(onnx_path))
    inits = {i.name: i for i in proto.graph.initializer}
    parts: dict[str, tuple[str, str]] = {}
    nodes, count = [], 0
    for node in proto.graph.node:
        nodes.append(node)
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2 or node.input[1] not in weight_names \
                or node.input[1] not in inits:
            continue
        name = node.input[1]
        if name not in parts:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            axis = 0 if node.op_type == "Conv" else 1  # ONNX ConvTranspose weights are (in, out/groups, kH, kW)
            other = tuple(a for a in range(w.ndim) if a != axis)
            scale = np.abs(w).max(axis=other, keepdims=True) / 127.0
            hi = (np.round(w / np.where(scale > 0, scale, 1.0)) * scale).astype(np.float32)
            lo = (w - hi).astype(np.float32)
            proto.graph.initializer.extend([numpy_helper.from_array(hi, f"{name}__hi"),
                                            numpy_helper.from_array(lo, f"{name}__lo")])
            parts[name] = (f"{name}__hi", f"{name}__lo")
        hi_name, lo_name = parts[name]
        out = node.output[0]
        lo_node = onnx.NodeProto()
        lo_node.CopyFrom(node)
        lo_node.name = f"{node.name}__lo"
        del lo_node.input[:]
        lo_node.input.extend([node.input[0], lo_name])  # no bias: the W_hi branch carries it
        del lo_node.output[:]
        lo_node.output.append(f"{out}__lo")
        node.input[1] = hi_name
        node.output[0] = f"{out}__hi"
        nodes.extend([lo_node, helper.make_node("Add", [f"{out}__hi", f"{out}__lo"], [out], name=f"{node.name}__sum")])
        count += 1
    if count:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        onnx.checker.check_model(proto)
        onnx.save_model(proto, str(onnx_path))
    return count


def to_keras(model, size: tuple[int, int], work: Path, split_weights=()):
    """PyTorch → fixed-size ONNX (inside `work`) → onnx2tf → the Keras model, in memory.

    `split_weights`: weight names to split with `split_int8_weights` (int16x8: the model's sensitive weights)."""
    from .onnx_export import torch_to_onnx

    onnx2tf = _require("onnx2tf")
    import tf_keras

    tf_keras.backend.clear_session()  # fresh layer-name counters: the same graph gets the same tensor names per size
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = torch_to_onnx(model, work / "model.onnx", size=size)  # a private file: onnx2tf rewrites it in place
    unshare_conv_biases(onnx_path)
    if split_weights:
        split_int8_weights(onnx_path, tuple(split_weights))
    # onnx2tf's output check loads this from the working folder or downloads it from GitHub: give it a local one
    np.save(work / _ONNX2TF_SAMPLE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    chatter = io.StringIO()
    try:
        with contextlib.chdir(work), contextlib.redirect_stdout(chatter):
            keras_model = onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(work / "tf"),
                                          non_verbose=True, disable_model_save=True)
    except Exception as e:
        tail = "\n".join(chatter.getvalue().strip().splitlines()[-5:])
        raise TFLiteExportError(f"onnx2tf failed at {size[1]}x{size[0]}: {type(e).__name__}: {e}\n{tail}") from e
    if keras_model is None or not getattr(keras_model, "inputs", None):
        raise TFLiteExportError(f"onnx2tf returned no model at {size[1]}x{size[0]}:\n{chatter.getvalue()[-800:]}")
    return keras_model


def convert_keras(keras_model, precision: str, calib_nhwc: np.ndarray | None, calibrate_only: bool = False) -> bytes:
    """Keras model → .tflite bytes with the converter options of `precision` (table in the module docstring).

    Converted from a concrete function of the model's fixed input signature: ``from_keras_model`` would first save a
    SavedModel (~7 s per call) for the same graph."""
    tf = _require("tensorflow")
    signature = [tf.TensorSpec(t.shape, t.dtype, t.name) for t in keras_model.inputs]
    function = tf.function(lambda *inputs: keras_model(inputs), input_signature=signature).get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([function], keras_model)
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision in NEEDS_CALIB:
        frames = calib_nhwc

        def representative():
            for frame in frames:
                yield [frame[None]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        if precision == "int16x8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    elif precision != "fp32":
        raise TFLiteExportError(f"TFLite precision must be one of {PRECISIONS}, got {precision!r}")
    conv._experimental_calibrate_only = calibrate_only  # noqa: SLF001 (what tf.lite's QuantizationDebugger sets)
    try:
        return conv.convert()
    except Exception as e:
        raise TFLiteExportError(f"TFLiteConverter ({precision}) failed: {type(e).__name__}: {e}") from e


def activation_ranges(calibrated: bytes) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
    """Tensor name → (min, max) the calibrator recorded in a calibrate-only model."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    return {t.name: (t.quantization.min, t.quantization.max) for g in model.subgraphs for t in g.tensors
            if t.quantization is not None and t.quantization.min is not None}


def quantize_int8_with(calibrated: bytes, ranges: dict) -> bytes:
    """A calibrate-only model of another size quantized to full int8 with `ranges` (``activation_ranges`` of the
    size that was calibrated), as TFLiteConverter would with its own calibration.

    Why: a fully convolutional net's activation ranges do not depend on the frame size, so one calibration serves
    every size; the files then share their quantization exactly, and the accuracy cost measured on one of them holds
    for all (``export.exporter`` measures it once per precision). The graph must be the same one: every tensor
    carrying a range must have a range of the same name, else TFLiteExportError."""
    tf = _require("tensorflow")
    from tensorflow.lite.python.convert import mlir_quantize
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    tensors = [t for g in model.subgraphs for t in g.tensors if t.quantization is not None
               and t.quantization.min is not None]
    names = {t.name for t in tensors}
    if names != set(ranges):
        raise TFLiteExportError(f"cannot share int8 activation ranges across sizes: {len(names ^ set(ranges))} "
                                "tensors differ between the graphs")
    for t in tensors:
        t.quantization.min, t.quantization.max = (np.array(v, np.float32, copy=True) for v in ranges[t.name])
    patched = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    try:
        return mlir_quantize(patched, input_data_type=tf.int8, output_data_type=tf.int8)
    except Exception as e:
        raise TFLiteExportError(f"int8 quantization with shared ranges failed: {type(e).__name__}: {e}") from e


def _interpreter(path: Path, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def _layout(shape, size) -> str:
    h, w = size
    shape = [int(v) for v in shape]
    if shape == [1, 3, h, w]:
        return "NCHW"
    if shape == [1, h, w, 3]:
        return "NHWC"
    raise TFLiteExportError(f"unexpected TFLite tensor shape {shape} for a {w}x{h} RGB frame")


def _io_entry(detail: dict, size, name: str) -> dict:
    dtype = np.dtype(detail["dtype"]).name
    entry = {"name": name, "tensor": detail["name"], "shape": [int(v) for v in detail["shape"]], "dtype": dtype,
             "layout": _layout(detail["shape"], size), "value_range": [0.0, 1.0], "color": "RGB"}
    scale, zero = detail["quantization"]
    if dtype in ("int8", "uint8", "int16"):
        # real value = scale * (q - zero_point); value_range stays the real [0, 1] pixel range
        entry["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return entry


def tensor_dtypes(path: Path) -> dict[str, int]:
    """Counts of tensor dtypes in the model (what proves a file is really quantized)."""
    it = _interpreter(path)
    counts: dict[str, int] = {}
    for t in it.get_tensor_details():
        name = np.dtype(t["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


def op_counts(path: Path) -> dict[str, int]:
    """Builtin op counts of the flatbuffer (QUANTIZE/DEQUANTIZE show where a model leaves integer arithmetic)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=False)
    counts: dict[str, int] = {}
    for op in it._get_ops_details():  # noqa: SLF001 (LiteRT has no public op listing)
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def make_runner(path: Path, size: tuple[int, int], threads: int | None = None):
    """The raw LiteRT engine of `path` (``derain_edge.engines.backends.TfliteBackend``: layouts and int8
    quantization handled, no pad/tile), frame by frame: N×3×H×W float32 [0, 1] at `size` → same."""
    from derain_edge.engines.backends import TfliteBackend

    engine = TfliteBackend(path, threads=threads)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != tuple(size):
            raise ValueError(f"{Path(path).name} takes N×3×{size[0]}×{size[1]} frames, got shape {x.shape}")
        return np.concatenate([np.clip(engine.run(frame[None]), 0.0, 1.0) for frame in x])

    return run


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "onnx", "onnx2tf", "tensorflow", "ai-edge-litert"):
        try:
            out[dist] = md.version(dist).split("+")[0]
        except md.PackageNotFoundError:
            pass
    return out


def export_tflite(model, job) -> list[Exported]:
    """One ``<stem>_<precision>_<H>x<W>.tflite`` per size of ``job.sizes`` (``_<precision>`` only added when the stem
    lacks it); int16x8 splits the model's ``job.hints.int8_sensitive_weights``."""
    job.check(BY_NAME["tflite"], TFLiteExportError)
    out_dir, stem, precision, sizes, calib = job.out_dir, job.stem, job.precision, job.sizes, job.calib
    split = tuple(job.hints.int8_sensitive_weights) if precision == "int16x8" else ()
    _require("tensorflow")
    _require("onnx2tf")
    _require("ai_edge_litert")
    out_dir = Path(out_dir)
    base = stem if stem.endswith(f"_{precision}") else f"{stem}_{precision}"
    results, ranges, calibrated_at = [], None, None  # int8: the shared activation ranges, (size, frames) they came from
    for size in progress(sizes, desc=f"tflite {precision}", unit="size", leave=False):
        t0 = time.perf_counter()
        frames = fit_calibration(calib, size) if calib is not None else None
        with tempfile.TemporaryDirectory(prefix="derain-tflite-") as work:
            keras_model = to_keras(model, size, Path(work), split_weights=split)
        if precision != "int8":
            data = convert_keras(keras_model, precision, frames)
        elif ranges is None:  # the first size is calibrated on every frame; the others take its ranges
            calibrated = convert_keras(keras_model, precision, frames, calibrate_only=True)
            ranges, calibrated_at = activation_ranges(calibrated), (size, len(frames))
            data = quantize_int8_with(calibrated, ranges)
        else:  # one frame only builds the calibrator's structure at this size; its ranges are replaced
            data = quantize_int8_with(convert_keras(keras_model, precision, frames[:1], calibrate_only=True), ranges)
        del keras_model
        final = out_dir / f"{base}_{size[1]}x{size[0]}.tflite"
        atomic_write_bytes(final, data)
        try:
            it = _interpreter(final)
        except Exception as e:  # e.g. a shape the kernels cannot prepare: do not leave a file that does not run
            final.unlink(missing_ok=True)
            raise TFLiteExportError(f"LiteRT cannot run the converted model at {size[1]}x{size[0]}: {e}") from e
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        extra = {"tflite": {
            "converter": "onnx2tf → tf.lite.TFLiteConverter.from_concrete_functions",
            "io_dtype": np.dtype(inp["dtype"]).name,
            "tensor_dtypes": tensor_dtypes(final),
            "calibration_frames": calibrated_at[1] if calibrated_at else (None if frames is None else len(frames)),
            "delegates": "XNNPACK (CPU) by default; GPU delegate takes fp32/fp16 files; NNAPI/Hexagon/Edge TPU want int8",
        }}
        if precision == "int16x8":
            extra["tflite"]["scheme"] = "int16 activations, int8 weights, float32 I/O" + (
                f"; the most sensitive weights ({', '.join(split)}) split into int8 + int8 residual" if split else
                "; no weights split (the model's registry entry names no sensitive weights)")
        elif precision == "int8":
            extra["tflite"]["scheme"] = "int8 activations and weights (per-channel), int8 I/O"
            extra["tflite"]["activation_ranges"] = (f"calibrated at {calibrated_at[0][1]}x{calibrated_at[0][0]}, shared "
                                                    "by every size of this export")
        elif precision == "fp16":
            extra["tflite"]["scheme"] = "float16 weights, float32 compute on CPU, float32 I/O"
        results.append(Exported(
            path=final, target="tflite", format="tflite", precision=precision,
            inputs=[_io_entry(inp, size, "rainy")], outputs=[_io_entry(out, size, "derained")],
            sizes=[list(size)], versions=versions(), extra=extra,
        ))
        log.info("tflite %s %dx%d: %s (%.1f s)", precision, *size, final, time.perf_counter() - t0)
    return results
