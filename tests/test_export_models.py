"""Every registered model through every export target that runs here (timm style: registry × formats).

Each artifact is made by ``derain-export --model M --target T`` as a user would, and its sidecar is checked against
the runtime that ships: parity re-measured through ``Derainer(artifact, gate=False)`` on the sidecar's parity image,
and the accuracy cost re-measured through ``Derainer`` on the same validation pairs (within 0.01 dB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_pairs
from derain_edge.files import sha256_file
from derain_edge.metrics import psnr, rgb_to_y
from derain_edge.registry import create_model, get_spec, list_models
from derain_edge.sizes import from_json
from export import cost as C
from export import formats as F
from export.cli import main
from export.sidecar import artifact_path, read_sidecar

# (target, precision, extra arguments): ONNX fp32, the Jetson bundle's FP16 and INT8 Q/DQ ONNX (run here in
# onnxruntime; TensorRT builds engines on the device), TFLite at one small size, CoreML (converted; runs on macOS)
CASES = [("onnx", "fp32", []), ("jetson", "fp16", []), ("jetson", "int8", []),
         ("tflite", "fp32", ["--size", "96x64"]), ("coreml", "fp16", ["--size", "96x64"])]


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("val"), 2, 96, 72, seed=40)


@pytest.fixture(scope="module")
def camera_val(tmp_path_factory) -> Path:
    """Two 320x240 pairs: camera-like frames, large against LPNet's receptive field (unlike the 96x72 ones)."""
    return write_pairs(tmp_path_factory.mktemp("camera_val"), 2, 320, 240, seed=50)


def _derainer(path: Path, precision: str):
    from runtime import Derainer

    # onnxruntime for ONNX (auto would pick OpenVINO for an INT8 Q/DQ model where it is installed)
    return Derainer(path, backend="onnxruntime" if path.suffix == ".onnx" else "auto", gate=False)


@pytest.mark.parametrize("model", list_models())
@pytest.mark.parametrize("target, precision, extra", CASES, ids=[f"{t}-{p}" for t, p, _ in CASES])
def test_model_exports_and_its_sidecar_matches_the_runtime(model, target, precision, extra, val_dir, tmp_path):
    spec = get_spec(model)
    if not spec.default_weights().is_file():
        pytest.skip(f"no shipped {model} weights in this checkout")
    try:
        F.load_function(F.BY_NAME[target])
    except (F.MissingDependency, F.TargetUnavailable) as e:
        pytest.skip(f"{target} cannot export here: {e}")
    out = tmp_path / "out"
    argv = ["--model", model, "--target", target, "--precision", precision, "--val", str(val_dir),
            "--calib-count", "4", "--allow-degraded", "--out", str(out), *extra]
    assert main(argv) == 0
    sidecars = [p for p in out.rglob("*.json") if p.parent.name != "calibration" and "sensitivity" not in p.name
                and ".mlpackage" not in str(p.parent)]
    assert sidecars, f"no artifact written for {model} {target} {precision}"
    for sc in sidecars:
        data = read_sidecar(sc)
        assert (data["model"], data["target"], data["precision"]) == (model, target, precision)
        assert data["weights_sha256"] == sha256_file(spec.default_weights())
        if data["parity"] is None:  # CoreML off macOS: converted and described, not run
            assert target == "coreml" and data["parity_skipped"]
            continue
        art = artifact_path(sc)
        derainer = _derainer(art, precision)
        reference = C.torch_runner(create_model(model))
        again = C.parity(derainer.run_nchw, reference, from_json(data["parity"]["size"]))
        assert again["psnr_y_db"] == pytest.approx(data["parity"]["psnr_y_db"], abs=0.01)
        assert again["max_abs_diff"] == pytest.approx(data["parity"]["max_abs_diff"], abs=2e-3)
        # the accuracy cost is what a user of the artifact gets on the same pairs
        scores = [psnr(rgb_to_y(derainer.derain_rgb(p.rainy)), rgb_to_y(p.clean)) for p in C.load_pairs(val_dir)]
        assert data["cost"]["psnr_y_db"] == pytest.approx(float(np.mean(scores)), abs=0.01)
        derainer.close()


def test_cost_is_measured_once_per_precision_and_each_size_gets_its_parity(camera_val, tmp_path):
    """320x240 pairs (camera-like): the 320x192 file tiles them (its own cost), the 320x256 one pads them (measured),
    the 640x480 one pads them too and takes the 320x256 cost over — and every sidecar's cost is what Derainer gives
    on its file. (Padded files differ only in how far the mirrored padding reaches: < 0.001 dB on Rain100H-dev
    between 640x480 and 1280x720, but 0.014 dB for 96x72 images padded to 128x96 vs 160x128 — tiny frames are all
    border for LPNet's receptive field.)"""
    val = camera_val
    out = tmp_path / "out"
    assert main(["--target", "onnx", "--size", "320x192", "--size", "320x256", "--size", "640x480", "--val",
                 str(val), "--out", str(out)]) == 0
    names = ("320x192", "320x256", "640x480")
    tiled, padded, copied = (read_sidecar(out / f"lpnet_fp32_{s}.onnx.json") for s in names)
    assert "measured_with" not in tiled["cost"] and "measured_with" not in padded["cost"]
    assert padded["cost"]["val"]["n"] == 2
    assert copied["cost"]["measured_with"] == "lpnet_fp32_320x256.onnx"
    assert copied["cost"]["psnr_y_db"] == padded["cost"]["psnr_y_db"]
    assert [from_json(d["parity"]["size"]) for d in (tiled, padded, copied)] == [(192, 320), (256, 320), (480, 640)]
    for name, data in zip(names, (tiled, padded, copied)):
        derainer = _derainer(artifact_path(out / f"lpnet_fp32_{name}.onnx.json"), "fp32")
        scores = [psnr(rgb_to_y(derainer.derain_rgb(p.rainy)), rgb_to_y(p.clean)) for p in C.load_pairs(val)]
        assert data["cost"]["psnr_y_db"] == pytest.approx(float(np.mean(scores)), abs=0.01), name
        assert data["cost"]["psnr_y_vs_fp32_db"] > 100  # the FP32 reference is fitted the same way: fp32 stays exact


def test_tflite_int8_sizes_share_quantization_so_a_shared_cost_holds(camera_val, tmp_path):
    """TFLite int8 files of one export share their activation ranges (calibrated once), so the cost measured on one
    padded size is what Derainer gives on the other."""
    try:
        F.load_function(F.BY_NAME["tflite"])
    except (F.MissingDependency, F.TargetUnavailable) as e:
        pytest.skip(f"tflite cannot export here: {e}")
    out = tmp_path / "out"
    assert main(["--target", "tflite", "--precision", "int8", "--size", "320x256", "--size", "640x480", "--val",
                 str(camera_val), "--calib-count", "4", "--allow-degraded", "--out", str(out)]) == 0
    first, second = (read_sidecar(out / f"lpnet_int8_{s}.tflite.json") for s in ("320x256", "640x480"))
    assert second["cost"]["measured_with"] == "lpnet_int8_320x256.tflite"
    assert first["tflite"]["activation_ranges"] == second["tflite"]["activation_ranges"] == \
        "calibrated at 320x256, shared by every size of this export"
    assert first["inputs"][0]["quantization"] == second["inputs"][0]["quantization"]
    derainer = _derainer(artifact_path(out / "lpnet_int8_640x480.tflite.json"), "int8")
    scores = [psnr(rgb_to_y(derainer.derain_rgb(p.rainy)), rgb_to_y(p.clean)) for p in C.load_pairs(camera_val)]
    assert second["cost"]["psnr_y_db"] == pytest.approx(float(np.mean(scores)), abs=0.01)
