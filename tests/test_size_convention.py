"""One size convention: every command that takes a size reads WxH (width first, as cameras say 640x480), and the
result has that orientation; sidecars name width and height and old [[H, W]] sidecars are still read."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from derain_edge.sizes import from_json, parse_size, size_json, size_text

ROOT = Path(__file__).resolve().parents[1]
W, H = 64, 48  # landscape: a swapped order shows up as a 48-wide, 64-high result


def test_parse_is_width_first():
    assert parse_size("640x480") == (480, 640)
    assert parse_size(" 1280 × 720 ") == (720, 1280)
    assert size_text((480, 640)) == "640x480"
    assert size_json((480, 640)) == {"width": 640, "height": 480}
    assert from_json({"width": 640, "height": 480}) == from_json([480, 640]) == (480, 640)
    for bad in ("640", "640x", "x480", "0x480", "640*480"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT|width and height"):
            parse_size(bad)


def test_derain_export_size_is_width_first(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from export.cli import main
    from export.sidecar import read_sidecar

    out = tmp_path / "out"
    assert main(["--target", "onnx", "--precision", "fp32", "--size", f"{W}x{H}", "--val-limit", "1",
                 "--out", str(out)]) == 0
    (path,) = out.glob("*.onnx")
    assert path.name.endswith(f"_{W}x{H}.onnx")
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[2:] == [H, W]  # NCHW: 48 high, 64 wide
    raw = json.loads(Path(str(path) + ".json").read_text())
    assert raw["sizes"] == [{"width": W, "height": H}]
    assert read_sidecar(path)["sizes"] == [[H, W]]


def test_old_sidecar_with_hw_lists_still_reads(tmp_path):
    from export.sidecar import read_sidecar

    io = [{"name": "x", "shape": [1, 3, H, W], "dtype": "float32", "layout": "NCHW", "value_range": [0, 1]}]
    old = {"schema": "derain-edge/sidecar/1", "artifact": "m.onnx", "target": "onnx", "format": "onnx",
           "precision": "fp32", "model": "lpnet", "weights_sha256": "0" * 64, "inputs": io, "outputs": io,
           "sizes": [[H, W]]}
    (tmp_path / "m.onnx.json").write_text(json.dumps(old))
    assert read_sidecar(tmp_path / "m.onnx")["sizes"] == [[H, W]]


def test_derain_run_size_is_width_first(tmp_path):
    out = tmp_path / "demo.avi"
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "demo", str(out), "--headless", "--size", f"{W}x{H}",
                        "--frames", "2", "--backend", "pytorch", "--threads", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    cap.release()
    assert ok
    # the side-by-side view puts rainy | derained next to each other: height is H, width a multiple of W
    assert frame.shape[0] == H and frame.shape[1] % W == 0


def test_derain_bench_size_is_width_first(tmp_path):
    from runtime import bench

    args = bench.build_parser().parse_args(["--size", f"{W}x{H}"])
    assert args.size == [(H, W)]


def test_tflite_measure_and_build_engine_sizes_are_width_first(monkeypatch, tmp_path):
    from export import tensorrt_build, tflite_measure

    assert tensorrt_build._hw("640x480") == (480, 640)
    seen = {}

    def fake_measure(model, pairs, size, precisions, calib, limit, keep, name):
        seen["size"], seen["calib"] = size, calib.shape
        return {"rows": {}, "size": size_json(size)}

    pairs = tmp_path / "pairs"
    (pairs / "rainy").mkdir(parents=True)
    (pairs / "clean").mkdir()
    monkeypatch.setattr(tflite_measure, "measure", fake_measure)
    monkeypatch.setattr(tflite_measure, "table", lambda result: "")
    rc = tflite_measure.main(["--pairs", str(pairs), "--size", f"{W}x{H}", "--calib-size", "32x16",
                              "--calib-count", "2", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert seen["size"] == (H, W) and tuple(seen["calib"][2:]) == (16, 32)


def test_export_docs_and_help_say_width_first():
    from export.cli import build_parser

    assert "width first" in build_parser().format_help()
    text = (ROOT / "docs" / "export.md").read_text()
    assert "height first" not in text and "480x640" not in text


def test_detector_example_size_is_width_first(monkeypatch):
    """examples/detector_pipeline.py renders its synthetic frames at --size WxH."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("detector_pipeline", ROOT / "examples/detector_pipeline.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    seen = []

    def frames(n, size, dictionary, seed=0):
        seen.append(size)
        return iter(())

    monkeypatch.setattr(example, "synthetic_frames", frames)
    example.main(["--frames", "1", "--size", f"{W}x{H}", "--threads", "1"])
    assert seen == [(H, W)]
