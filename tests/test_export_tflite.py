"""TFLite target: every precision converted from one SavedModel, run in LiteRT and compared with PyTorch.

Conversions are slow (onnx2tf ≈ 15–30 s), so one SavedModel at a tiny size is shared by the accuracy tests and only
int8 (the most involved path: calibration, int8 I/O, quantization parameters) goes through export_tflite end to end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tensorflow", reason='TFLite export needs tensorflow (pip install "derain-edge[tflite]")')
pytest.importorskip("onnx2tf", reason="TFLite export needs onnx2tf (pip install --no-deps onnx2tf==1.29.24)")
pytest.importorskip("ai_edge_litert", reason='TFLite parity needs ai-edge-litert (pip install "derain-edge[tflite]")')

import lpnet  # noqa: E402
from derain_edge.metrics import psnr_y  # noqa: E402
from derain_edge.rain import render_rain  # noqa: E402
from derain_edge.scenes import dead_leaves  # noqa: E402
from derain_edge.registry import get_spec  # noqa: E402
from export import tflite  # noqa: E402
from export.job import ExportJob  # noqa: E402
from export.sidecar import read_sidecar, write_sidecar  # noqa: E402

LPNET_SENSITIVE = get_spec("lpnet").export_hints.int8_sensitive_weights
SIZE = (64, 96)  # every pyramid level even and no side of 3 px (see test_unrunnable_size_leaves_no_file)
# Minimum PSNR-Y of the LiteRT output vs PyTorch FP32 on rainy scenes. Measured with the shipped weights: fp16
# 67–68 dB, int16x8 44–48 dB (before tflite.split_int8_weights; ~51 dB after), int8 41–43 dB here, and 62 / 47 / 43 dB
# on Rain100H at 480×640 (docs/export_mobile.md); the floors leave ~3 dB of margin for other scenes.
MIN_PSNR = {"fp16": 60.0, "int16x8": 41.0, "int8": 38.0}


def _rainy(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = [render_rain(dead_leaves(h, w, rng).astype(np.float32) / 255.0, rng) for _ in range(n)]
    return np.round(np.stack(frames).transpose(0, 3, 1, 2) * 255.0).astype(np.float32) / 255.0


def _u8(chw: np.ndarray) -> np.ndarray:
    return (np.clip(chw.transpose(1, 2, 0), 0, 1) * 255.0 + 0.5).astype(np.uint8)


def job(out, precision, sizes, calib):
    return ExportJob(out_dir=out, stem="lpnet", precision=precision, sizes=sizes, calib=calib,
                     hints=get_spec("lpnet").export_hints)


@pytest.fixture(scope="module")
def model():
    return lpnet.load_pretrained().eval()


@pytest.fixture(scope="module")
def calib():
    return _rainy(12, 80, 112, seed=1)  # larger than SIZE: centre-cropped for the representative dataset


@pytest.fixture(scope="module")
def frames(model):
    x = _rainy(2, *SIZE, seed=2)
    with torch.no_grad():
        return x, model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def converted(model, calib, tmp_path_factory):
    """{precision: .tflite path}: int16x8 from a Keras model with split sensitive weights (as export_tflite does), the
    rest and "int16x8-plain" (no split, for comparison) from the plain one."""
    work = tmp_path_factory.mktemp("tflite")
    plain = tflite.to_keras(model, SIZE, work / "plain")
    split = tflite.to_keras(model, SIZE, work / "split", split_weights=LPNET_SENSITIVE)
    fitted = tflite.fit_calibration(calib, SIZE)
    out = {}
    for precision in [*tflite.PRECISIONS, "int16x8-plain"]:
        base = precision.split("-")[0]
        path = work / f"{precision}.tflite"
        source = split if precision == "int16x8" else plain
        path.write_bytes(tflite.convert_keras(source, base, fitted if base in tflite.NEEDS_CALIB else None))
        out[precision] = path
    return out


@pytest.fixture(scope="module")
def int8_export(model, calib, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite_int8")
    return tflite.export_tflite(model, job(out, "int8", [SIZE], calib))


def _conv_inputs(path: Path) -> list[tuple]:
    """(activation, weight, bias) tensor details of every convolution (TRANSPOSE_CONV orders its inputs
    output_shape, weight, activation[, bias]; its bias may be absent)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    det = {d["index"]: d for d in it.get_tensor_details()}
    det[-1] = {"index": -1, "dtype": None}
    out = []
    for op in it._get_ops_details():
        ins = [int(i) for i in op["inputs"]]
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            out.append((det[ins[0]], det[ins[1]], det[ins[2]] if len(ins) > 2 else det[-1]))
        elif op["op_name"] == "TRANSPOSE_CONV":
            out.append((det[ins[2]], det[ins[1]], det[ins[3]] if len(ins) > 3 else det[-1]))
    return out


def test_fp32_matches_pytorch(converted, frames):
    x, ref = frames
    got = tflite.make_runner(converted["fp32"], SIZE)(x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-5


@pytest.mark.parametrize("precision", ["fp16", "int16x8", "int8"])
def test_reduced_precision_close_to_pytorch(converted, frames, precision):
    x, ref = frames
    got = tflite.make_runner(converted[precision], SIZE)(x)
    scores = [psnr_y(_u8(a), _u8(b)) for a, b in zip(got, ref)]
    assert min(scores) >= MIN_PSNR[precision], f"{precision}: PSNR-Y vs PyTorch {scores}"


@pytest.fixture(scope="module")
def heavy_only_int16x8(calib, tmp_path_factory):
    """int16x8 with and without the weight split for the heavy-rain-only LPNet weights (kept in checkpoints/), whose
    coarse subnet and pyramid upsampling are the sensitive layers the split was designed for."""
    heavy = lpnet.load_pretrained(Path(__file__).parents[1] / "checkpoints/lpnet-r100h/shipped-heavy-only.safetensors")
    work = tmp_path_factory.mktemp("tflite_heavy")
    fitted = tflite.fit_calibration(calib, SIZE)
    out = {}
    for name, split in (("int16x8", LPNET_SENSITIVE), ("int16x8-plain", ())):
        keras_model = tflite.to_keras(heavy, SIZE, work / name, split_weights=split)
        path = work / f"{name}.tflite"
        path.write_bytes(tflite.convert_keras(keras_model, "int16x8", fitted))
        out[name] = path
    return heavy, out


def _score_vs_pytorch(model, paths: dict, x: np.ndarray) -> dict:
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return {name: float(np.mean([psnr_y(_u8(a), _u8(b)) for a, b in zip(tflite.make_runner(p, SIZE)(x), ref)]))
            for name, p in paths.items()}


def test_int16x8_split_weights_more_accurate(heavy_only_int16x8, frames):
    """Splitting the sensitive weights into int8 + int8 residual (tflite.split_int8_weights) pays off where those
    layers dominate the int8-weight error: ~5–6 dB closer to PyTorch for the heavy-only weights (docs/export_mobile.md)."""
    heavy, paths = heavy_only_int16x8
    score = _score_vs_pytorch(heavy, paths, frames[0])
    assert score["int16x8"] >= score["int16x8-plain"] + 2.0, score
    counts, plain = tflite.op_counts(paths["int16x8"]), tflite.op_counts(paths["int16x8-plain"])
    assert counts["CONV_2D"] == plain["CONV_2D"] + 5 and counts["TRANSPOSE_CONV"] == plain["TRANSPOSE_CONV"] + 8


def test_int16x8_split_never_hurts_shipped_weights(model, converted, frames):
    """The shipped (generalist) weights are less sensitive in those layers (measured +0.14 dB from the split, both
    ~45 dB): the split must at least not cost accuracy."""
    score = _score_vs_pytorch(model, {k: converted[k] for k in ("int16x8", "int16x8-plain")}, frames[0])
    assert score["int16x8"] >= score["int16x8-plain"] - 0.3, score


def test_split_int8_weights(model, tmp_path):
    """Float graph unchanged (W_hi + W_lo = W), W_hi exactly on the per-output-channel int8 grid."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from export.onnx_export import torch_to_onnx

    path = torch_to_onnx(model, tmp_path / "m.onnx", size=SIZE)
    x = _rainy(1, *SIZE, seed=3)
    sess = ort.InferenceSession(str(path))
    before = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert tflite.split_int8_weights(path, LPNET_SENSITIVE) == 13  # 5 recursions of subnets.4.block1 + 8 pyramid upsamplings
    sess = ort.InferenceSession(str(path))
    after = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(after - before).max() < 1e-5
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    hi = inits["subnets.4.block1.weight__hi"]
    scale = np.abs(hi).max(axis=(1, 2, 3), keepdims=True) / 127.0
    assert np.allclose(hi / scale, np.round(hi / scale), atol=1e-3)
    lo = inits["subnets.4.block1.weight__lo"]
    assert 0 < np.abs(lo).max() <= scale.max() / 2 + 1e-9
    assert tflite.split_int8_weights(path, weight_names=("no.such.weight",)) == 0


def test_fp16_stores_half_weights(converted):
    dtypes = tflite.tensor_dtypes(converted["fp16"])
    assert dtypes.get("float16", 0) > 0 and "int8" not in dtypes
    assert tflite.op_counts(converted["fp16"]).get("DEQUANTIZE", 0) > 0  # fp16 weights expanded at load


def test_int16x8_really_int16_activations_int8_weights(converted):
    convs = _conv_inputs(converted["int16x8"])
    assert convs
    assert all(a["dtype"] == np.int16 and w["dtype"] == np.int8 for a, w, _ in convs)
    assert all(b["dtype"] in (np.int64, None) for _, _, b in convs)
    counts = tflite.op_counts(converted["int16x8"])
    assert counts.get("QUANTIZE", 0) >= 1 and counts.get("DEQUANTIZE", 0) == 1  # float I/O, integer inside


def test_int16x8_biases_not_shared(converted):
    """Regression for the shared-bias mis-scaling (see tflite.unshare_conv_biases): one bias tensor per conv."""
    from collections import Counter

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(converted["int16x8"]))
    it.allocate_tensors()
    uses = Counter(b["index"] for _, _, b in _conv_inputs(converted["int16x8"]) if b["dtype"] == np.int64)
    assert sum(uses.values()) >= 85
    shared = [i for i, n in uses.items() if n > 1]
    # only an all-zero bias (the bias-free pyramid convs) may be shared: zero is zero at every scale
    assert all(not it.get_tensor(i).any() for i in shared), f"non-zero bias tensors shared: {shared}"


def test_int8_fully_integer(converted):
    dtypes = tflite.tensor_dtypes(converted["int8"])
    assert "float32" not in dtypes and dtypes["int8"] > 0
    assert all(a["dtype"] == np.int8 and w["dtype"] == np.int8 for a, w, _ in _conv_inputs(converted["int8"]))
    counts = tflite.op_counts(converted["int8"])
    assert "DEQUANTIZE" not in counts and "QUANTIZE" not in counts


def test_unshare_conv_biases(model, tmp_path):
    import onnx

    from export.onnx_export import torch_to_onnx

    path = torch_to_onnx(model, tmp_path / "m.onnx", size=SIZE)
    before = [n.input[2] for n in onnx.load(str(path)).graph.node if n.op_type == "Conv" and len(n.input) > 2]
    assert len(set(before)) < len(before)  # LPNet's recursions share weights (the case the fix is for)
    copies = tflite.unshare_conv_biases(path)
    after = [n.input[2] for n in onnx.load(str(path)).graph.node if n.op_type == "Conv" and len(n.input) > 2]
    assert copies == len(before) - len(set(before)) and len(set(after)) == len(after)


def test_export_tflite_int8_contract(int8_export, frames, tmp_path):
    (e,) = int8_export
    assert e.path.name == f"lpnet_int8_{SIZE[1]}x{SIZE[0]}.tflite" and e.path.is_file()
    assert (e.target, e.format, e.precision, e.sizes) == ("tflite", "tflite", "int8", [list(SIZE)])
    assert {"tensorflow", "onnx2tf", "ai-edge-litert"} <= set(e.versions)
    (inp,), (out,) = e.inputs, e.outputs
    assert inp["name"] == "rainy" and inp["dtype"] == "int8" and inp["layout"] == "NHWC"
    assert inp["shape"] == [1, *SIZE, 3]
    assert out["name"] == "derained" and out["dtype"] == "int8" and out["layout"] in ("NCHW", "NHWC")
    # [0, 1] pixels map onto the int8 range: scale ≈ 1/255 when the calibration frames span black to white
    assert inp["quantization"]["scale"] == pytest.approx(1 / 255, rel=0.02)
    assert e.extra["tflite"]["calibration_frames"] == 12
    x, ref = frames
    got = e.runner(x)  # the runtime's LiteRT engine behind its pad/tile policy
    assert min(psnr_y(_u8(a), _u8(b)) for a, b in zip(got, ref)) >= MIN_PSNR["int8"]
    assert e.runner(x[:, :, :32]).shape == x[:, :, :32].shape  # smaller frames are padded, as Derainer does
    with pytest.raises(ValueError, match="takes"):
        tflite.make_runner(e.path, SIZE)(x[:, :, :32])  # the raw engine takes its size only
    sidecar = write_sidecar(tmp_path / e.path.name, {
        "target": e.target, "format": e.format, "precision": e.precision, "model": "lpnet",
        "weights_sha256": "0" * 64, "inputs": e.inputs, "outputs": e.outputs, "sizes": e.sizes,
        "versions": e.versions, **e.extra})
    assert read_sidecar(sidecar)["inputs"][0]["quantization"] == inp["quantization"]


def test_output_layout_matches_interpreter(converted):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(converted["fp32"]))
    out = it.get_output_details()[0]
    entry = tflite._io_entry(out, SIZE, "derained")
    expected = "NCHW" if list(out["shape"]) == [1, 3, *SIZE] else "NHWC"
    assert entry["layout"] == expected and entry["dtype"] == "float32" and "quantization" not in entry


def test_calibration_fitting():
    big = np.random.default_rng(0).random((3, 3, 80, 120), dtype=np.float32)
    fitted = tflite.fit_calibration(big, (64, 96))
    assert fitted.shape == (3, 64, 96, 3)
    np.testing.assert_array_equal(fitted[0], big[0, :, 8:72, 12:108].transpose(1, 2, 0))  # centre crop
    # small frames keep their scale: packed 1×2 per frame, the 24-px strip below mirrors them, the last cell cycles
    small = big[:, :, :40, :48]
    packed = tflite.fit_calibration(small, (64, 96))
    assert packed.shape == (2, 64, 96, 3)
    hwc = small.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(packed[0, :40, :48], hwc[0])
    np.testing.assert_array_equal(packed[0, :40, 48:], hwc[1])
    np.testing.assert_array_equal(packed[1, :40, 48:], hwc[0])
    np.testing.assert_array_equal(packed[0, 40:64, :48], hwc[0, ::-1][:24])
    # the pixel budget bounds the work at large sizes: one 1080×1920 frame holds 24 of 320×240
    many = np.random.default_rng(1).random((32, 3, 240, 320), dtype=np.float32)
    assert tflite.fit_calibration(many, (1080, 1920)).shape[0] == 2


@pytest.mark.parametrize("precision", ["int8", "int16x8"])
def test_quantized_needs_calibration(model, tmp_path, precision):
    with pytest.raises(tflite.TFLiteExportError, match="calibration"):
        tflite.export_tflite(model, job(tmp_path, precision, [SIZE], None))
    with pytest.raises(tflite.TFLiteExportError, match=r"\[0, 1\]"):
        tflite.export_tflite(model, job(tmp_path, precision, [SIZE], np.full((2, 3, 8, 8), 255.0, np.float32)))
    with pytest.raises(tflite.TFLiteExportError, match="N×3×H×W"):
        tflite.export_tflite(model, job(tmp_path, precision, [SIZE], np.zeros((8, 8, 3), np.float32)))
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(model, tmp_path):
    with pytest.raises(tflite.TFLiteExportError, match="precision"):
        tflite.export_tflite(model, job(tmp_path, "int4", [SIZE], None))
    with pytest.raises(tflite.TFLiteExportError, match="dynamic"):
        tflite.export_tflite(model, job(tmp_path, "fp32", [], None))
    with pytest.raises(tflite.TFLiteExportError, match="positive"):
        tflite.export_tflite(model, job(tmp_path, "fp32", [(64, 0)], None))
    assert list(tmp_path.iterdir()) == []


def test_unrunnable_size_leaves_no_file(model, tmp_path):
    """At 48x32 (WxH) the coarsest pyramid level is 2×3 px and LiteRT cannot prepare the converted TRANSPOSE_CONV."""
    with pytest.raises(tflite.TFLiteExportError, match="48x32"):
        tflite.export_tflite(model, job(tmp_path, "fp32", [(32, 48)], None))
    assert list(tmp_path.iterdir()) == []


def test_measure_tool_scores_the_exporters_files_through_the_runtime(tmp_path):
    """python -m export.tflite_measure: files from export_tflite, cost from export.cost (LiteRT behind run_fitted)."""
    import json

    from conftest import add_rain, make_clean, write_png
    from export import tflite_measure

    pairs = tmp_path / "pairs"
    for i in range(2):
        clean = make_clean(80, 56, seed=40 + i)
        write_png(pairs / "clean" / f"{i}.png", clean)
        write_png(pairs / "rainy" / f"{i}.png", add_rain(clean, seed=i))
    out = tmp_path / "cost.json"
    assert tflite_measure.main(["--pairs", str(pairs), "--size", "96x64", "--precisions", "fp32,int8",
                                "--calib-count", "4", "--calib-size", "64x48", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert set(rows) == {"pytorch-fp32", "fp32", "int8"} and result["pairs"] == 2
    assert "padded/tiled" in result["fit"]  # the runtime's fixed-size policy, not a policy of its own
    assert rows["fp32"]["psnr_y_vs_fp32_db"] >= 60 and abs(rows["fp32"]["psnr_y_drop_db"]) <= 0.01
    assert 25 < rows["int8"]["psnr_y_vs_fp32_db"] < rows["fp32"]["psnr_y_vs_fp32_db"]
    assert rows["int8"]["psnr_y_drop_db"] == pytest.approx(
        rows["pytorch-fp32"]["psnr_y_vs_gt_db"] - rows["int8"]["psnr_y_vs_gt_db"], abs=2e-3)
