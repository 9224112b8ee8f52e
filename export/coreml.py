"""CoreML target: an ML-program ``.mlpackage`` that takes and returns RGB images, for iPhone/iPad/Mac Neural Engines.

Why this shape:

* **ImageType in and out.** Apps hand CoreML a camera ``CVPixelBuffer``; an image input (scale 1/255, RGB) does the
  uint8 → [0, 1] conversion inside the model, and an image output (the model is wrapped to emit 0–255) gives a pixel
  buffer back, so the app never touches float tensors.
* **EnumeratedShapes, not ranges.** A model with a fixed list of input sizes stays eligible for the Neural Engine;
  a RangeDim model runs on GPU/CPU only. The default list covers common camera sizes; the caller's sizes are added.
* **FP16 compute** (the Neural Engine's native type), iOS 17 minimum (ML program spec 8; FP16 inputs need ≥ iOS 16).
  ``precision="int8"`` additionally stores weights as linear symmetric per-channel int8
  (``coremltools.optimize.coreml.linear_quantize_weights``, ``weight_threshold=0`` because this network's layers are
  all smaller than the default 2048-element threshold); activations stay FP16 (activation quantization needs macOS).
* **Traced, not torch.export.** coremltools 9 rejects EnumeratedShapes on a static ExportedProgram ("inconsistent
  shape between EXIR input"), and an ExportedProgram with dynamic H×W (``Dim.AUTO``) fails inside the converter on the
  size-dependent crop of the pyramid upsampler ("Tensors in 'values' of the concat op should share the same data
  type"; named ``Dim`` ranges are rejected by torch.export itself because it cannot prove the crop guards). A
  ``torch.jit.trace`` keeps the crop as shape ops and converts with EnumeratedShapes, so that route is used, with
  torch's deprecation warning silenced here (see docs/export_mobile.md).

Prediction needs macOS: on Linux the package is converted and inspected (spec, op set) but ``runner`` is None.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from .artifact import Exported, unique_sizes
from .formats import BY_NAME, DEFAULT_SIZES

log = logging.getLogger(__name__)

PRECISIONS = BY_NAME["coreml"].precisions  # the formats table's row (export.formats)
INPUT_NAME, OUTPUT_NAME = "rainy", "derained"
DEPLOYMENT_TARGET = "iOS17"
NO_PREDICT_REASON = "CoreML prediction needs macOS"
# ops a converted image-to-image CNN may contain; anything else in the package is a conversion surprise
EXPECTED_OPS = frozenset({
    "const", "constexpr_affine_dequantize", "constexpr_blockwise_shift_scale", "constexpr_lut_to_dense",
    "conv", "conv_transpose", "leaky_relu", "relu", "add", "sub", "mul", "clip", "cast", "pad",
    "shape", "gather", "concat", "slice_by_index", "slice_by_size", "crop", "instance_norm", "tanh", "sigmoid",
    "upsample_bilinear", "upsample_nearest_neighbor", "real_div", "identity",
})


class CoreMLExportError(ValueError):
    """Bad arguments or a conversion that cannot be done, with the reason."""


class _ImageOut(nn.Module):
    """Wraps a [0, 1] → [0, 1] model so it emits 0–255, which a CoreML image output expects."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * 255.0


def enumerated_sizes(sizes) -> list[tuple[int, int]]:
    """The caller's sizes first (the first one is the model's default), then the camera defaults, without repeats."""
    return unique_sizes(list(sizes or []) + list(DEFAULT_SIZES), CoreMLExportError)


def _save_atomic(mlmodel, final: Path) -> None:
    """Saves the package into a temporary folder beside `final`, then renames it over `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        staged = tmp_dir / final.name
        mlmodel.save(str(staged))
        if final.exists():  # os.replace cannot replace a non-empty folder: move the old one aside first
            old = tmp_dir / (final.name + ".old")
            os.replace(final, old)
        os.replace(staged, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _trace(model: nn.Module, size: tuple[int, int]) -> torch.jit.ScriptModule:
    example = torch.rand(1, 3, *size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace deprecation + TracerWarnings about shape-dependent slicing
        return torch.jit.trace(_ImageOut(model).eval(), example)


def _quantize_weights_int8(mlmodel):
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    config = OptimizationConfig(global_config=OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
    return linear_quantize_weights(mlmodel, config=config)


def mil_ops(package: str | Path) -> Counter:
    """Op-type counts of the package's ``main`` function, read from the saved spec (works on any OS)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    fn = spec.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    return Counter(op.type for op in block.operations)


def export_coreml(model: nn.Module, job) -> list[Exported]:
    """Converts `model` to ``<out_dir>/<stem>.mlpackage`` (``_<precision>`` appended to the stem if absent), with
    ``job.sizes`` (then the camera defaults) as enumerated shapes (``export.job.ExportJob``).

    ``job.calib`` is not used: CoreML weight quantization needs no data, and activation quantization needs macOS.
    """
    job.check(BY_NAME["coreml"], CoreMLExportError)
    out_dir, stem, precision, sizes = job.out_dir, job.stem, job.precision, job.sizes
    from derain_edge.optional import require

    ct = require("coremltools", "coreml")  # MissingDependency with the exact pip command

    out_dir = Path(out_dir)
    shapes = enumerated_sizes(sizes)
    base = stem if stem.endswith(f"_{precision}") else f"{stem}_{precision}"
    final = out_dir / f"{base}.mlpackage"
    t0 = time.perf_counter()
    traced = _trace(model.eval(), shapes[0])
    enum = ct.EnumeratedShapes(shapes=[(1, 3, h, w) for h, w in shapes], default=(1, 3, *shapes[0]))
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    try:
        mlmodel = ct.convert(
            traced,
            inputs=[ct.ImageType(name=INPUT_NAME, shape=enum, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB)],
            outputs=[ct.ImageType(name=OUTPUT_NAME, color_layout=ct.colorlayout.RGB)],
            convert_to="mlprogram",
            compute_precision=compute,
            minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
        )
    except (NotImplementedError, ValueError, RuntimeError, TypeError) as e:
        raise CoreMLExportError(f"coremltools {ct.__version__} cannot convert {type(model).__name__}: {e}") from e
    quant = None
    if precision == "int8":
        mlmodel = _quantize_weights_int8(mlmodel)
        quant = {"weights": "int8 linear symmetric, per output channel", "activations": "fp16",
                 "tool": "coremltools.optimize.coreml.linear_quantize_weights", "weight_threshold": 0}
    mlmodel.short_description = f"{base}: deraining, RGB image in → derained RGB image out"
    _save_atomic(mlmodel, final)
    if quant is not None:  # coremltools leaves tensors of a handful of elements in fp16 (nothing to gain)
        quant["quantized_tensors"] = mil_ops(final)["constexpr_affine_dequantize"]
    log.info("coreml %s: %s (%.1f s)", precision, final, time.perf_counter() - t0)

    image_io = {"shape": [1, "H", "W", 3], "dtype": "uint8", "layout": "NHWC", "value_range": [0, 255],
                "color": "RGB", "kind": "image"}
    skip = None if sys.platform == "darwin" else NO_PREDICT_REASON  # it runs in the runtime's CoreMLBackend
    return [Exported(
        path=final, target="coreml", format="mlpackage", precision=precision,
        inputs=[{"name": INPUT_NAME, **image_io, "scale": 1.0 / 255.0}],
        outputs=[{"name": OUTPUT_NAME, **image_io}],
        sizes=[[h, w] for h, w in shapes],
        versions={"coremltools": ct.__version__, "torch": torch.__version__.split("+")[0]},
        skip_reason=skip,
        extra={"coreml": {
            "model_type": "mlprogram", "minimum_deployment_target": DEPLOYMENT_TARGET,
            "compute_precision": "fp32" if precision == "fp32" else "fp16",
            "enumerated_shapes": [[1, 3, h, w] for h, w in shapes], "default_shape": [1, 3, *shapes[0]],
            "weight_quantization": quant, "source": "torch.jit.trace (EnumeratedShapes; see docs/export_mobile.md)",
            "compute_units": "ALL (fixed enumerated sizes keep the Neural Engine eligible)",
        }},
    )]
