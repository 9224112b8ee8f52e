"""PyTorch → ONNX with the dynamo exporter: the file every other target starts from (TensorRT, onnx2tf, ORT).

Contract (the sidecar describes it): one input ``rainy`` and one output ``derained``, N×3×H×W float32 RGB in [0, 1].
``size=None`` keeps H and W symbolic (LPNet runs at any H×W ≥ 1; the export is checked at odd sizes in the tests);
a fixed ``size`` bakes it in for converters that need static shapes. The graph is simplified with onnxslim (it folds
the shape arithmetic of the pyramid's crops) and must pass ``onnx.checker`` in full before it is renamed into place,
so an interrupted export never leaves a half-written ``.onnx`` under the final name.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path


from derain_edge.files import atomic_path
from derain_edge.optional import require as _require

from .artifact import Exported

INPUT_NAME = "rainy"
OUTPUT_NAME = "derained"
MIN_OPSET = 18  # torch 2.13's dynamo exporter cannot down-convert Pad below 18 (docs/toolchain.md §1)
_EXAMPLE_HW = (64, 96)  # example size for a dynamic export: not 0/1 (torch.export specialises those), not square

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """An export step failed; the message says which and why."""


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be at least 1x1, got {h}x{w}")
    return h, w


def torch_to_onnx(model, path, size: tuple[int, int] | None = None, opset: int = 20, batch: int = 1) -> Path:
    """Exports `model` (N×3×H×W RGB [0,1] → same) to `path`; returns the path.

    size=None: dynamic H and W (input dims ``[batch, 3, "height", "width"]``); (H, W): fixed. `batch` is fixed.
    Raises ValueError for bad arguments, ExportError when the exporter, simplifier or checker fails.
    """
    import torch

    _require("onnx")
    _require("onnxscript")
    onnxslim = _require("onnxslim")
    import onnx

    path = Path(path)
    size = _check_size(size)
    if int(opset) < MIN_OPSET:
        raise ValueError(f"opset {opset} is below {MIN_OPSET}, the lowest the dynamo exporter honours (docs/toolchain.md §1)")
    if int(batch) < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    model = model.eval()
    h, w = size if size is not None else _EXAMPLE_HW
    example = torch.rand(int(batch), 3, h, w, generator=torch.Generator().manual_seed(0))
    dynamic_shapes = None
    if size is None:
        from torch.export import Dim

        # keyed by position: the model's forward argument may have any name
        dynamic_shapes = ({2: Dim("height", min=1, max=16384), 3: Dim("width", min=1, max=16384)},)

    # "torchvision is not installed. Skipping torchvision::nms" ×4 on every export: noise for us
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    opset_version=int(opset),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=dynamic_shapes,
                    external_data=False,
                    verbose=False,
                    report=False,
                )
            proto = program.model_proto
        except Exception as e:  # the exporter raises many types; name the step
            raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        try:
            slim = onnxslim.slim(proto)
        except Exception as e:
            raise ExportError(f"onnxslim failed to simplify the graph: {e}") from e
        if slim is None:
            raise ExportError("onnxslim returned no model")
        _name_dims(slim, batch, size)
        try:
            onnx.checker.check_model(slim, full_check=True)
        except Exception as e:
            raise ExportError(f"onnx.checker rejected the exported graph: {e}") from e
        onnx.save_model(slim, str(tmp))
    return path


def _name_dims(proto, batch: int, size) -> None:
    """Gives the dynamic dims stable names ("height"/"width") on input and output, whatever the exporter called them."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        dims[0].dim_value = int(batch)
        dims[1].dim_value = 3
        if size is None:
            dims[2].dim_param = "height"
            dims[3].dim_param = "width"


def onnx_io(path) -> tuple[list[dict], list[dict]]:
    """Sidecar I/O entries read from the ONNX file itself (so they cannot disagree with it)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in proto.graph.initializer}

    def entries(values):
        out = []
        for v in values:
            if v.name in init:
                continue
            shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in v.type.tensor_type.shape.dim]
            elem = v.type.tensor_type.elem_type
            out.append({"name": v.name, "shape": shape, "dtype": onnx.helper.tensor_dtype_to_np_dtype(elem).name,
                        "layout": "NCHW", "value_range": [0.0, 1.0], "color": "RGB"})
        return out

    return entries(proto.graph.input), entries(proto.graph.output)


def ort_runner(path, threads: int | None = None):
    """The raw onnxruntime engine of `path` (``derain_edge.engines.backends.OrtBackend``, no pad/tile: a fixed-size
    ONNX takes its size only): NCHW float32 [0, 1] → same."""
    from derain_edge.engines.backends import OrtBackend

    return OrtBackend(path, threads=threads).run


def versions() -> dict[str, str]:
    import onnx
    import torch

    out = {"torch": torch.__version__.split("+")[0], "onnx": onnx.__version__}
    for mod in ("onnxscript", "onnxslim", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # optional
            pass
    return out


def model_digest(model) -> str:
    """sha256 over the model's state dict: one FP32 export per weights serves every precision and target of a run."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fp32_onnx(model, opset: int, workspace) -> Path:
    """A dynamic-H×W FP32 ONNX of `model` in the run's workspace (``export.job.Workspace``), exported once per
    (weights, opset) and run. Callers copy it; they never write to it."""
    key = (model_digest(model), int(opset))
    cached = workspace.fp32.get(key)
    if cached is None or not cached.is_file():
        cached = workspace.fp32[key] = torch_to_onnx(model, workspace.path / f"{key[0][:16]}_{opset}.onnx",
                                                     opset=opset)
    return cached


def _copy_atomic(src: Path, dst: Path) -> Path:
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def export_onnx(model, job) -> list[Exported]:
    """The `onnx` target (``export.job.ExportJob``): one ONNX, dynamic H×W when ``job.sizes`` is None/empty, else
    one file per size.

    FP16 computes in float16 behind float32 I/O (``to_fp16``); INT8 is the TensorRT-style Q/DQ model
    (``export.qdq.quantize_qdq``) calibrated on ``job.calib``, with ``job.nodes_to_exclude`` kept in float.
    """
    from .formats import BY_NAME

    job.check(BY_NAME["onnx"])
    out_dir, stem, precision, calib, opset = job.out_dir, job.stem, job.precision, job.calib, job.opset
    nodes_to_exclude = list(job.nodes_to_exclude)
    workspace = job.scratch()
    targets = [None] if not job.sizes else [tuple(s) for s in job.sizes]
    results = []
    for size in targets:
        suffix = "" if size is None else f"_{size[1]}x{size[0]}"
        final = out_dir / f"{stem}_{precision}{suffix}.onnx"
        if size is None:
            fp32 = fp32_onnx(model, opset, workspace)
        else:
            fp32 = torch_to_onnx(model, workspace.path / f"fixed_{size[1]}x{size[0]}.onnx", size=size, opset=opset)
        if precision == "fp32":
            _copy_atomic(fp32, final)
        elif precision == "fp16":
            to_fp16(fp32, final)
        else:
            from .qdq import quantize_qdq

            quantize_qdq(fp32, final, calib, nodes_to_exclude=nodes_to_exclude or None)
        extra = {"opset": opset_of(final)}
        if precision == "int8":
            from .qdq import qdq_report

            extra["quantization"] = {"format": "QDQ", "activations": "int8 symmetric per-tensor",
                                     "weights": "int8 symmetric per-channel", "bias": "float",
                                     "nodes_excluded": list(nodes_to_exclude or []), **qdq_report(final)}
        inputs, outputs = onnx_io(final)
        results.append(Exported(
            path=final, target="onnx", format="onnx", precision=precision, inputs=inputs, outputs=outputs,
            sizes="dynamic" if size is None else [list(size)], versions=versions(),
            extra=extra,
        ))
    return results


def opset_of(path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def to_fp16(src, dst) -> Path:
    """FP16 weights and compute with float32 I/O (Casts at the boundary), so the runtime contract stays NCHW float32;
    a strongly typed TensorRT (11, or 10 with --stronglyTyped) builds FP16 kernels from it without precision flags."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnxslim = _require("onnxslim")
    proto = onnx.load(str(src))
    half = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
    half = onnxslim.slim(half)  # the converter appends its input Casts at the end; slim re-sorts the graph
    try:
        onnx.checker.check_model(half, full_check=True)
    except Exception as e:
        raise ExportError(f"onnx.checker rejected the FP16 graph: {e}") from e
    with atomic_path(dst) as tmp:
        onnx.save_model(half, str(tmp))
    return Path(dst)
