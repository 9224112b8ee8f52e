"""Derainer over every backend available here: same output as PyTorch at odd sizes, input conversions, errors,
batch and async modes. Backends that cannot run here (TensorRT, CoreML prediction) skip with the reason."""
from __future__ import annotations

import importlib.util
import platform
import queue

import numpy as np
import pytest

import lpnet
from derain_edge.imageio import ImageError
from export.job import ExportJob
from runtime import BackendError
from runtime import Derainer as _Derainer
from runtime.backends import IOAdapter


def Derainer(*args, **kwargs):  # noqa: N802 — engine parity is checked on the raw output; the rain gate has its own tests
    return _Derainer(*args, **{"gate": False, **kwargs})
from runtime.loader import normalize_backend

ODD_SIZES = [(37, 53), (29, 31)]


def _export_onnx(path, size=None):
    from export.onnx_export import onnx_io, torch_to_onnx
    from export.sidecar import write_sidecar

    torch_to_onnx(lpnet.load_pretrained(), path, size=size)
    inputs, outputs = onnx_io(path)
    write_sidecar(path, {"target": "onnx", "format": "onnx", "precision": "fp32", "model": "lpnet",
                         "weights_sha256": "0" * 64, "inputs": inputs, "outputs": outputs,
                         "sizes": "dynamic" if size is None else [list(size)]})
    return path


@pytest.fixture(scope="module")
def onnx_dynamic(tmp_path_factory):
    return _export_onnx(tmp_path_factory.mktemp("onnx") / "lpnet_fp32.onnx")


@pytest.fixture(scope="module")
def reference():
    return Derainer(backend="pytorch", threads=1)  # PyTorch eager: what every engine is checked against


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 200, w, dtype=np.float32)[None, :, None] + np.linspace(0, 40, h, dtype=np.float32)[:, None, None]
    img = base + rng.normal(0, 12, (h, w, 3))
    img[rng.random((h, w)) < 0.05] = 250  # rain-like bright specks
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv", "openvino"])
def test_onnx_backends_match_pytorch_at_odd_sizes(backend, onnx_dynamic, reference):
    if backend == "openvino" and importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino not installed (optional: pip install openvino)")
    d = Derainer(onnx_dynamic, backend, threads=1)
    assert d.backend == f"{backend}-fp32"
    for h, w in ODD_SIZES:
        frame = _frame(h, w, h)
        ref = reference(frame)
        out = d(frame)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        # fp32 engines: identical up to one rounding step of the uint8 output
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1, backend
        assert np.abs(out.astype(int) - frame.astype(int)).mean() > 0.5  # it did derain something


def test_pytorch_backend_equals_derain_rgb(reference):
    from derain_edge.infer import derain_rgb

    frame = _frame(37, 53)
    expected = derain_rgb(lpnet.load_pretrained(), np.ascontiguousarray(frame[:, :, ::-1]))[:, :, ::-1]
    assert np.abs(reference(frame).astype(int) - expected.astype(int)).max() <= 1


def test_weights_file_and_sidecar_json_load(tmp_path, onnx_dynamic):
    from lpnet.weights import shipped_weights_path

    assert Derainer(shipped_weights_path(), "pytorch", threads=1).backend == "pytorch-fp32"
    d = Derainer(str(onnx_dynamic) + ".json", threads=1)  # the sidecar names its artifact
    assert d.backend == "onnxruntime-fp32" and d.engine.sizes == "dynamic"


def test_tflite_backend_matches_pytorch_with_padding(tmp_path_factory, reference):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnx2tf")
    from export.sidecar import write_sidecar
    from export.tflite import export_tflite

    out_dir = tmp_path_factory.mktemp("tflite")
    # 64×96: every pyramid level even, none 3 px wide (LiteRT cannot prepare those; see test_export_tflite)
    (exp,) = export_tflite(lpnet.load_pretrained(), ExportJob(out_dir=out_dir, stem="lpnet", precision="fp32",
                                                              sizes=[(64, 96)]))
    write_sidecar(exp.path, {"target": "tflite", "format": "tflite", "precision": "fp32", "model": "lpnet",
                             "weights_sha256": "0" * 64, "inputs": exp.inputs, "outputs": exp.outputs,
                             "sizes": exp.sizes})
    d = Derainer(exp.path, threads=1)
    assert d.backend == "tflite-fp32" and d.engine.sizes == [(64, 96)]
    frame = _frame(64, 96, 3)
    assert np.abs(d(frame).astype(int) - reference(frame).astype(int)).max() <= 1
    # an odd, smaller frame is padded into the fixed 64×96 input and cropped back
    small = _frame(51, 77, 4)
    out = d(small)
    assert out.shape == (51, 77, 3)
    # exactly what PyTorch gives on the same mirror-padded frame, cropped
    padded = np.pad(small, ((0, 64 - 51), (0, 96 - 77), (0, 0)), mode="symmetric")
    assert np.abs(out.astype(int) - reference(padded)[:51, :77].astype(int)).max() <= 1
    from derain_edge.metrics import psnr_y

    # LPNet's coarsest pyramid level sees the whole frame, so padding shifts the result a little (≈ 27 dB here)
    assert psnr_y(out[:, :, ::-1], reference(small)[:, :, ::-1]) > 22.0
    # a larger odd frame is tiled over the fixed input and blended
    big = _frame(101, 157, 5)
    out = d(big)
    assert out.shape == (101, 157, 3)
    assert psnr_y(out[:, :, ::-1], reference(big)[:, :, ::-1]) > 28.0  # ≈ 32 dB: tiles lack the global context


def test_tensorrt_backend_needs_tensorrt(onnx_dynamic):
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendError, match="tensorrt"):
            Derainer(onnx_dynamic, "tensorrt")
        pytest.skip("TensorRT is not installable here (no GPU, PyPI has only download stubs): engine run not tested")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT installed but no CUDA device")
    d = Derainer(onnx_dynamic, "tensorrt", precision="fp16")
    frame = _frame(37, 53)
    assert np.abs(d(frame).astype(int) - Derainer(threads=1)(frame).astype(int)).mean() < 2.0


def test_coreml_prediction_needs_macos(tmp_path):
    from runtime.backends import CoreMLBackend

    if platform.system() != "Darwin":
        with pytest.raises(BackendError, match="macOS"):
            CoreMLBackend(tmp_path / "lpnet.mlpackage")
        pytest.skip("CoreML prediction needs macOS; only the refusal is checked here")


def test_input_conversions_gray_bgra_16bit(reference):
    bgr = _frame(30, 41)
    gray = bgr[:, :, 1].copy()
    out_gray = reference(gray)
    assert out_gray.shape == (30, 41, 3)
    assert np.array_equal(out_gray, reference(np.repeat(gray[:, :, None], 3, axis=2)))
    bgra = np.concatenate([bgr, np.full((30, 41, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(reference(bgra), reference(bgr))
    assert np.array_equal(reference(bgr.astype(np.uint16) * 257), reference(bgr))


@pytest.mark.parametrize("bad, match", [
    (None, "None"), (np.zeros((0, 5, 3), np.uint8), "empty"), ("frame.png", "numpy"),
    (np.zeros((8, 8, 5), np.uint8), "shape"), (np.zeros((8, 8, 3), np.int32), "pixel type"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
])
def test_bad_frames_raise_clear_errors(reference, bad, match):
    with pytest.raises(ImageError, match=match):
        reference(bad)


def test_bad_model_and_backend_names():
    with pytest.raises(BackendError, match="did you mean 'onnxruntime'"):
        normalize_backend("onnxruntim")
    with pytest.raises(BackendError, match="no such file"):
        Derainer("missing/model.onnx")
    with pytest.raises(BackendError, match="cannot run an ONNX|cannot run this artifact"):
        Derainer(lpnet.load_pretrained(), "onnxruntime")


def test_onnx_without_sidecar_and_corrupt_onnx(tmp_path, onnx_dynamic):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx_dynamic.read_bytes())
    assert Derainer(bare, threads=1)(_frame(9, 11)).shape == (9, 11, 3)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(BackendError, match="broken.onnx"):
        Derainer(broken)


def test_batch_equals_single_calls(reference, onnx_dynamic):
    frames = [_frame(20, 30, 1), _frame(21, 17, 2), _frame(20, 30, 3)]
    for d in (reference, Derainer(onnx_dynamic, threads=1)):
        outs = d.batch(frames)
        for f, o in zip(frames, outs):
            assert np.abs(o.astype(int) - d(f).astype(int)).max() <= 1


def test_async_mode_order_errors_and_bounded_queue(reference):
    frames = [_frame(16, 24, i) for i in range(5)]
    expected = [reference(f) for f in frames]
    with reference.start_async(maxsize=2) as worker:
        futures = [worker.submit(f) for f in frames]
        assert all(np.array_equal(fu.result(timeout=60), e) for fu, e in zip(futures, expected))
        bad = worker.submit(np.zeros((0, 0, 3), np.uint8))
        with pytest.raises(ImageError):
            bad.result(timeout=60)
        # hold the engine so the worker blocks on its first frame: the queue then fills and refuses more
        with reference._lock:
            held = [worker.submit(frames[0]), worker.submit(frames[1]), worker.submit(frames[2])]
            with pytest.raises(queue.Full):
                for _ in range(3):
                    worker.submit(frames[3], block=False)
        assert all(h.result(timeout=60) is not None for h in held)


def test_io_adapter_nhwc_and_value_range():
    io = IOAdapter({"layout": "NHWC", "value_range": [0, 255], "dtype": "uint8"},
                   {"layout": "NHWC", "value_range": [0, 255], "dtype": "uint8"})
    x = np.random.default_rng(0).random((1, 3, 5, 7)).astype(np.float32)
    m = io.to_model(x)
    assert m.shape == (1, 5, 7, 3) and m.dtype == np.uint8
    back = io.from_model(m, (5, 7))
    assert back.shape == (1, 3, 5, 7) and np.abs(back - x).max() <= 0.5 / 255 + 1e-6
    # an output that came back NCHW although NHWC was declared (onnx2tf does that) is still read right
    assert io.from_model(np.transpose(m, (0, 3, 1, 2)), (5, 7)).shape == (1, 3, 5, 7)


def test_jetson_bundle_without_tensorrt_runs_its_onnx(tmp_path, reference):
    from derain_edge.metrics import psnr_y
    from export.jetson import export_jetson
    from export.sidecar import write_sidecar

    calib = np.stack([_frame(64, 96, s)[:, :, ::-1].transpose(2, 0, 1) for s in range(4)]).astype(np.float32) / 255
    model = lpnet.load_pretrained()
    for precision in ("fp16", "int8"):
        (exp,) = export_jetson(model, ExportJob(out_dir=tmp_path, stem="lpnet", precision=precision,
                                                 calib=calib if precision == "int8" else None))
        write_sidecar(exp.path, {"target": "jetson", "format": "onnx", "precision": precision, "model": "lpnet",
                                 "weights_sha256": "0" * 64, "inputs": exp.inputs, "outputs": exp.outputs,
                                 "sizes": "dynamic"})
    bundle = tmp_path / "lpnet_jetson"
    frame = _frame(37, 53, 9)
    ref = reference(frame)[:, :, ::-1]
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendError, match="TensorRT"):
            Derainer(bundle, "tensorrt")
    fp16 = Derainer(bundle, threads=1)  # auto: TensorRT when installed, else the bundle's FP16 ONNX in onnxruntime
    if fp16.engine.name == "onnxruntime":
        assert fp16.backend == "onnxruntime-fp16"
    assert psnr_y(fp16(frame)[:, :, ::-1], ref) > 45.0
    int8 = Derainer(bundle, precision="int8", threads=1)
    assert int8.engine.precision == "int8"
    if fp16.engine.name == "onnxruntime" and importlib.util.find_spec("openvino") is not None:
        assert int8.engine.name == "openvino"  # CPU-only + INT8: OpenVINO's VNNI kernels (≈ 3× onnxruntime's)
    assert 30.0 < psnr_y(int8(frame)[:, :, ::-1], ref) < 60.0  # int8 costs a little, and it is really int8
    with pytest.raises(BackendError, match="no fp32 model"):
        Derainer(bundle, precision="fp32")
