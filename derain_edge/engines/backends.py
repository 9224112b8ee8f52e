"""One small class per inference engine, all with the same contract: N×3×H×W float32 RGB in [0, 1] in, same out.

The artifact's own I/O (layout, value range, dtype, fixed sizes) comes from its sidecar (``export.sidecar``) and is
adapted here, so neither ``runtime.derainer`` nor the exporter's parity and cost checks care which engine runs
(``runtime.backends`` re-exports this module). Engines that cannot run on this machine
(TensorRT without a GPU, CoreML off macOS) are still real code written against the vendors' documented APIs; they
raise ``BackendError`` naming what is missing instead of failing obscurely.
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from .errors import BackendError

def _cpu_threads() -> int:
    """Default inference threads: the idle cores, never all cores of a busy machine (derain_edge.engines.threads)."""
    from .threads import default_threads

    return default_threads()


def _import(module: str, extra: str, what: str):
    """The engine's module, or BackendError naming it and the pip command (derain_edge.optional)."""
    from derain_edge.optional import require

    return require(module, extra, what=what, error=BackendError)


# ------------------------------------------------------------------------------------------------ I/O adapter
class IOAdapter:
    """Converts between the runtime's NCHW float32 [0, 1] RGB and one artifact's declared input/output tensors."""

    def __init__(self, input_spec: dict | None = None, output_spec: dict | None = None):
        self.inp = input_spec or {"layout": "NCHW", "value_range": [0.0, 1.0], "dtype": "float32"}
        self.out = output_spec or {"layout": "NCHW", "value_range": [0.0, 1.0], "dtype": "float32"}

    def to_model(self, x: np.ndarray, dtype=None, quant: tuple[float, int] | None = None) -> np.ndarray:
        lo, hi = (float(v) for v in self.inp.get("value_range", (0.0, 1.0)))
        if self.inp.get("layout", "NCHW") == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        if (lo, hi) != (0.0, 1.0):
            x = lo + x * (hi - lo)
        dtype = np.dtype(dtype or self.inp.get("dtype", "float32"))
        if quant is not None and quant[0]:  # real = scale · (q − zero_point)
            scale, zero = quant
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            x = np.clip(np.round(x), info.min, info.max)
        return np.ascontiguousarray(x, dtype=dtype)

    def from_model(self, y: np.ndarray, hw: tuple[int, int], quant: tuple[float, int] | None = None) -> np.ndarray:
        y = np.asarray(y)
        if quant is not None and quant[0]:
            y = (y.astype(np.float32) - quant[1]) * quant[0]
        y = y.astype(np.float32, copy=False)
        if y.ndim == 3:
            y = y[None]
        layout = self.out.get("layout", "NCHW")
        # onnx2tf does not always keep the declared output layout (docs/toolchain.md §5b): trust the shape when it disagrees
        if layout == "NHWC" and y.shape[1:3] != tuple(hw) and y.shape[2:4] == tuple(hw):
            layout = "NCHW"
        elif layout == "NCHW" and y.shape[2:4] != tuple(hw) and y.shape[1:3] == tuple(hw):
            layout = "NHWC"
        if layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        lo, hi = (float(v) for v in self.out.get("value_range", (0.0, 1.0)))
        if (lo, hi) != (0.0, 1.0):
            y = (y - lo) / (hi - lo)
        return np.ascontiguousarray(y, dtype=np.float32)


# ------------------------------------------------------------------------------------------------ base class
class Backend:
    """An engine behind the Derainer. `sizes` is "dynamic" or the list of (H, W) the artifact accepts; `max_size`
    bounds dynamic engines (TensorRT profiles); `max_batch` is None when any N works."""

    name = "base"

    def __init__(self, precision: str = "fp32", sizes="dynamic", max_size: tuple[int, int] | None = None,
                 max_batch: int | None = None, source: str = ""):
        self.precision = precision
        self.sizes = sizes if sizes == "dynamic" else [tuple(int(v) for v in s) for s in sizes]
        self.max_size = max_size
        self.max_batch = max_batch
        self.source = source

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def label(self) -> str:
        return f"{self.name}-{self.precision}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} sizes={self.sizes} from {self.source or 'memory'}>"


# ------------------------------------------------------------------------------------------------ PyTorch
class TorchBackend(Backend):
    """PyTorch eager (the reference every artifact is checked against); fp16 on CUDA only."""

    name = "pytorch"

    def __init__(self, model, device: str | None = None, precision: str = "fp32", threads: int | None = None,
                 compile: bool = False, source: str = ""):
        import torch

        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise BackendError("PyTorch fp16 needs a CUDA device (CPU half-precision convolutions are slower than fp32)")
        if precision not in ("fp32", "fp16"):
            raise BackendError(f"the PyTorch backend runs fp32 or fp16 (CUDA), not {precision}")
        # torch's thread count is process-wide: remember ours and set it per call (two Derainers may differ)
        self.threads = int(threads) if threads else _cpu_threads()
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        self.module = torch.compile(self.model) if compile else self.model
        name = "pytorch-compile" if compile else "pytorch"
        super().__init__(precision=precision, source=source)
        self.name = name

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype)
            y = self.module(t).float().clamp_(0.0, 1.0)
            return y.cpu().numpy()


# ------------------------------------------------------------------------------------------------ ONNX Runtime
def ort_providers(requested: list[str] | None = None, cache_dir: str | Path | None = None) -> list:
    """TensorRT → CUDA → CPU execution providers, as far as this onnxruntime build has them."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = requested or ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    out = []
    for p in wanted:
        if p not in available:
            continue
        if p == "TensorrtExecutionProvider":
            cache = str(cache_dir or Path.home() / ".cache" / "derain-edge" / "ort-trt")
            out.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache, "trt_fp16_enable": True}))
        else:
            out.append(p)
    return out or ["CPUExecutionProvider"]


class OrtBackend(Backend):
    """onnxruntime with every graph optimisation (NCHWc layout, Conv+activation fusion), one thread per available
    core unless told otherwise, and no spinning threads."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, sidecar: dict | None = None, threads: int | None = None,
                 providers: list[str] | None = None, precision: str | None = None, optimization: str = "all"):
        ort = _import("onnxruntime", "onnx", "the onnxruntime backend")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or _cpu_threads())
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        }[optimization]
        options.log_severity_level = 3
        # no busy-waiting between ops: on a device the decoder, the detector and the tracker share these cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=ort_providers(providers))
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: onnxruntime cannot load it: {str(e).splitlines()[0]}") from e
        sc = sidecar or {}
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        self.io = IOAdapter((sc.get("inputs") or [None])[0], (sc.get("outputs") or [None])[0])
        batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        sizes = sc.get("sizes") or ("dynamic" if not all(isinstance(d, int) for d in inp.shape[2:]) else [inp.shape[2:]])
        super().__init__(precision=precision or sc.get("precision", "fp32"), sizes=sizes, max_batch=batch,
                         source=str(path))
        self.providers = self.session.get_providers()

    def run(self, x: np.ndarray) -> np.ndarray:
        (y,) = self.session.run(None, {self.input_name: self.io.to_model(x, self.input_dtype)})
        return self.io.from_model(y, x.shape[2:])


# ------------------------------------------------------------------------------------------------ OpenVINO
class OpenVinoBackend(Backend):
    """Intel OpenVINO reading the ONNX directly (the usual runtime on Intel-based surveillance boxes).

    Latency hint, one stream, one inference thread per core; a dynamic-H×W model is compiled once and reshaped by
    the plugin per input size.
    """

    name = "openvino"

    def __init__(self, path: str | Path, sidecar: dict | None = None, threads: int | None = None,
                 device: str = "CPU", precision: str | None = None):
        ov = _import("openvino", "openvino", "the OpenVINO backend")
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads or _cpu_threads())
            # f32 unless the artifact is lower precision: the CPU plugin otherwise picks bf16/fp16 where the CPU has it
            # f32 unless asked otherwise: the CPU plugin would pick bf16 by itself where the CPU has it (AVX512-BF16,
            # AMX); "bf16" opts in (≈ 56 dB PSNR vs fp32 for LPNet, measured in derain-bench)
            want = precision or (sidecar or {}).get("precision")
            config["INFERENCE_PRECISION_HINT"] = {"fp16": "f16", "bf16": "bf16"}.get(want, "f32")
        try:
            self.compiled = core.compile_model(str(path), device, config)
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot compile it for {device}: {str(e).splitlines()[0]}") from e
        self.request = self.compiled.create_infer_request()
        sc = sidecar or {}
        self.io = IOAdapter((sc.get("inputs") or [None])[0], (sc.get("outputs") or [None])[0])
        in_type = self.compiled.inputs[0].get_element_type().get_type_name()
        self.input_dtype = np.float16 if in_type == "f16" else np.float32
        super().__init__(precision=precision or sc.get("precision", "fp32"), sizes=sc.get("sizes", "dynamic"),
                         max_batch=1, source=str(path))

    @staticmethod
    def supports(precision: str) -> bool:
        """Whether this machine's CPU plugin runs `precision` natively ("bf16" needs AVX512-BF16 or AMX)."""
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}.get(precision, "FP32") in caps

    def run(self, x: np.ndarray) -> np.ndarray:
        res = self.request.infer({0: self.io.to_model(x, self.input_dtype)})
        return self.io.from_model(next(iter(res.values())), x.shape[2:])


# ------------------------------------------------------------------------------------------------ OpenCV DNN
class OpenCvDnnBackend(Backend):
    """cv2.dnn on an fp32 ONNX (no extra package at all; slower than onnxruntime on CPU, see docs/toolchain.md §7)."""

    name = "opencv"

    def __init__(self, path: str | Path, sidecar: dict | None = None, precision: str | None = None,
                 threads: int | None = None):
        import cv2

        self.cv2, self.threads = cv2, int(threads or _cpu_threads())  # cv2's pool is process-wide: set per call
        sc = sidecar or {}
        prec = precision or sc.get("precision", "fp32")
        try:
            if prec == "int8":  # ORT Q/DQ graphs only load in the classic engine (docs/toolchain.md §6)
                self.net = cv2.dnn.readNetFromONNX(str(path), engine=cv2.dnn.ENGINE_CLASSIC)
            else:
                self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as e:
            raise BackendError(f"{path}: OpenCV DNN cannot read it: {str(e).strip().splitlines()[-1]}") from e
        self.io = IOAdapter((sc.get("inputs") or [None])[0], (sc.get("outputs") or [None])[0])
        if prec == "fp16":
            raise BackendError(f"{path}: OpenCV DNN runs fp32 ONNX only (this one is fp16); use onnxruntime")
        super().__init__(precision=prec, sizes=sc.get("sizes", "dynamic"), max_batch=1, source=str(path))

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.cv2.getNumThreads() != self.threads:
            self.cv2.setNumThreads(self.threads)
        self.net.setInput(self.io.to_model(x, np.float32))
        return self.io.from_model(self.net.forward(), x.shape[2:])


# ------------------------------------------------------------------------------------------------ TFLite / LiteRT
def tflite_interpreter_class():
    """ai-edge-litert's Interpreter, or tflite-runtime's on devices that only have that."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError as e:
        raise BackendError('the TFLite backend needs ai-edge-litert (pip install "derain-edge[tflite]") or '
                           f"tflite-runtime ({e})") from e


class TfliteBackend(Backend):
    """LiteRT (XNNPACK) on a fixed-size .tflite; int8 I/O is (de)quantised with the tensor's own scale/zero point."""

    name = "tflite"

    def __init__(self, path: str | Path, sidecar: dict | None = None, threads: int | None = None,
                 precision: str | None = None):
        Interpreter = tflite_interpreter_class()
        try:
            self.interp = Interpreter(model_path=str(path), num_threads=int(threads or _cpu_threads()))
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"{path}: LiteRT cannot load it: {e}") from e
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        sc = sidecar or {}
        in_spec = (sc.get("inputs") or [None])[0] or {"layout": "NHWC" if self.inp["shape"][-1] == 3 else "NCHW"}
        out_spec = (sc.get("outputs") or [None])[0] or {"layout": "NHWC" if self.out["shape"][-1] == 3 else "NCHW"}
        self.io = IOAdapter(in_spec, out_spec)
        shape = [int(v) for v in self.inp["shape"]]
        hw = tuple(shape[1:3]) if self.io.inp.get("layout") == "NHWC" else tuple(shape[2:4])
        sizes = sc.get("sizes") if isinstance(sc.get("sizes"), list) else [hw]
        super().__init__(precision=precision or sc.get("precision", "fp32"), sizes=sizes, max_batch=shape[0],
                         source=str(path))

    def _quant(self, detail):
        scale, zero = detail.get("quantization", (0.0, 0))
        return (float(scale), int(zero)) if np.dtype(detail["dtype"]).kind in "iu" and scale else None

    def run(self, x: np.ndarray) -> np.ndarray:
        x_in = self.io.to_model(x, self.inp["dtype"], self._quant(self.inp))
        if tuple(x_in.shape) != tuple(self.inp["shape"]):
            raise BackendError(f"{self.source}: takes {tuple(self.inp['shape'])}, got {x_in.shape} "
                               "(fixed-size artifact: the Derainer pads or tiles to its size)")
        self.interp.set_tensor(self.inp["index"], x_in)
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        return self.io.from_model(y, x.shape[2:], self._quant(self.out))


# ------------------------------------------------------------------------------------------------ CoreML
class CoreMLBackend(Backend):
    """coremltools MLModel.predict on an .mlpackage (macOS only; ImageType I/O takes and gives PIL RGB images)."""

    name = "coreml"

    def __init__(self, path: str | Path, sidecar: dict | None = None, compute_units: str = "ALL",
                 precision: str | None = None):
        if platform.system() != "Darwin":
            raise BackendError(f"{path}: CoreML prediction needs macOS (this is {platform.system()}); "
                               "run the ONNX or TFLite artifact here instead")
        ct = _import("coremltools", "coreml", "the CoreML backend")
        sc = sidecar or {}
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        self.in_spec = (sc.get("inputs") or [{}])[0]
        self.out_spec = (sc.get("outputs") or [{}])[0]
        self.io = IOAdapter(self.in_spec or None, self.out_spec or None)
        super().__init__(precision=precision or sc.get("precision", "fp16"), sizes=sc.get("sizes", "dynamic"),
                         max_batch=1, source=str(path))

    def run(self, x: np.ndarray) -> np.ndarray:
        from PIL import Image

        name_in = self.in_spec.get("name", "rainy")
        if self.in_spec.get("kind") == "image":
            rgb = np.clip(np.round(x[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
            feed = {name_in: Image.fromarray(rgb, "RGB")}
        else:
            feed = {name_in: self.io.to_model(x, np.float32)}
        out = self.model.predict(feed)
        y = out[self.out_spec.get("name", "derained")] if self.out_spec.get("name") in out else next(iter(out.values()))
        if self.out_spec.get("kind") == "image" or hasattr(y, "convert"):
            y = np.asarray(y.convert("RGB"), np.float32)[None] / 255.0
            return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return self.io.from_model(np.asarray(y), x.shape[2:])


# ------------------------------------------------------------------------------------------------ TensorRT
class TensorRTBackend(Backend):
    """A serialized TensorRT engine run with the TensorRT ≥ 10 Python API (named tensors, execute_async_v3),
    device buffers allocated through torch.cuda. Optimisation-profile 0 bounds the sizes it accepts."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, sidecar: dict | None = None, precision: str | None = None):
        trt = _import("tensorrt", "tensorrt", "the TensorRT backend")
        import torch

        if not torch.cuda.is_available():
            raise BackendError("the TensorRT backend needs a CUDA device (torch.cuda.is_available() is False)")
        self.trt, self.torch = trt, torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise BackendError(f"{engine_path}: TensorRT cannot deserialize it (built by another TensorRT version "
                               "or for another GPU? rebuild it from the bundle's ONNX)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.in_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.input_name))
        self.out_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.output_name))
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        sizes, max_size = "dynamic", None
        if -1 in shape[2:]:
            lo, _opt, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
            max_size = (int(hi[2]), int(hi[3]))
            self.min_size = (int(lo[2]), int(lo[3]))
        else:
            sizes = [(int(shape[2]), int(shape[3]))]
            self.min_size = sizes[0]
        sc = sidecar or {}
        super().__init__(precision=precision or sc.get("precision", "fp16"), sizes=sizes, max_size=max_size,
                         max_batch=1, source=str(engine_path))
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, dt):
        trt, torch = self.trt, self.torch
        return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8}.get(dt, torch.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.cuda.stream(self.stream):
            inp = torch.from_numpy(np.ascontiguousarray(x)).to("cuda", non_blocking=True).to(self.in_dtype)
            self.context.set_input_shape(self.input_name, tuple(inp.shape))
            out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.out_dtype,
                              device="cuda")
            self.context.set_tensor_address(self.input_name, inp.data_ptr())
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError(f"{self.source}: TensorRT execute_async_v3 failed")
            self.stream.synchronize()
        return out.float().clamp_(0.0, 1.0).cpu().numpy()
