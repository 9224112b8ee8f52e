"""derain-bench on a tiny frame: the JSON others rely on (per-backend results, top-level speedup_vs_eager), MACs,
roofline fields and the streaming overhead. Speed targets live in the benchmark itself, never in tests."""
from __future__ import annotations

import json

import pytest
import torch

from runtime.bench import macs_per_frame, main, percentiles


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["--size", "64x48", "--iters", "3", "--warmup", "1", "--rounds", "1", "--threads", "1",
                 "--skip-opencv", "--stream-frames", "4", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_json_has_every_backend_and_a_consistent_speedup(report):
    rows = {r["backend"]: r for r in report["results"] if r["size"] == "64x48"}
    assert {"pytorch-fp32 (1 thread)", "onnxruntime-fp32 (1 thread)", "onnxruntime-int8 (1 thread)"} <= set(rows)
    for r in rows.values():
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["n"] == 3 and r["fps"] > 0
    base = report["eager_baseline"]["64x48"]
    assert base == {"backend": "pytorch-fp32 (1 thread)", "p50_ms": rows["pytorch-fp32 (1 thread)"]["p50_ms"]}
    best = rows[report["best"]["64x48"]]
    assert not best["backend"].startswith("pytorch-fp32")
    assert best["p50_ms"] == min(r["p50_ms"] for r in rows.values() if not r["backend"].startswith("pytorch-fp32"))
    assert report["speedup_vs_eager"]["64x48"] == pytest.approx(base["p50_ms"] / best["p50_ms"], rel=0.02)
    best32 = rows[report["best_fp32"]["64x48"]]
    assert best32["precision"] == "fp32"
    # quality next to speed: fp32 engines reproduce eager, int8 costs something but stays close
    assert rows["pytorch-fp32 (1 thread)"]["psnr_y_vs_eager_db"] is None
    assert rows["onnxruntime-fp32 (1 thread)"]["psnr_y_vs_eager_db"] is None or \
        rows["onnxruntime-fp32 (1 thread)"]["psnr_y_vs_eager_db"] > 50
    assert 30 < rows["onnxruntime-int8 (1 thread)"]["psnr_y_vs_eager_db"] < 60


def test_macs_roofline_and_streaming(report):
    import lpnet

    assert report["macs_per_frame"]["64x48"] == macs_per_frame(lpnet.load_pretrained(), (48, 64)) > 1e7
    assert report["conv_throughput"]["peak_3x3_64ch_gmacs"] > 0
    for r in report["results"]:
        assert r["gmacs_achieved"] == pytest.approx(report["macs_per_frame"][r["size"]] / r["p50_ms"] / 1e6, rel=0.02)
    s = report["streaming"]
    assert s["frames"] == 4 and s["raw_ms_per_frame"] > 0
    assert s["overhead_pct"] == pytest.approx(100 * (s["loop_ms_per_frame"] / s["raw_ms_per_frame"] - 1), abs=0.5)


def test_mac_count_is_exact_for_a_known_layer():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert macs_per_frame(conv, (10, 12)) == 3 * 8 * 9 * 10 * 12


def test_percentiles_and_bad_arguments(capsys, tmp_path):
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert p["p50_ms"] == pytest.approx(50.5) and p["p99_ms"] == pytest.approx(99.01) and p["n"] == 100
    assert main(["--iters", "0"]) == 2
    assert main(["--model", str(tmp_path / "missing.onnx")]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["--model", "lpnet", "--model", "anlcl"]) == 2
    assert "one network per run" in capsys.readouterr().err
    assert main(["--model", "lpnte"]) == 2
    assert "not a registered model (lpnet, anlcl" in capsys.readouterr().err


def test_any_registered_model(tmp_path):
    """--model NAME benches that network's shipped weights on every backend (exported by the exporter)."""
    from derain_edge.registry import load_model

    out = tmp_path / "anlcl.json"
    assert main(["--model", "anlcl", "--size", "64x48", "--iters", "2", "--warmup", "1", "--rounds", "1",
                 "--threads", "1", "--no-one-thread", "--no-int8", "--skip-opencv", "--skip-streaming",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == "anlcl"
    assert report["macs_per_frame"]["64x48"] == macs_per_frame(load_model("anlcl")[0], (48, 64))
    assert report["macs_per_frame"]["64x48"] != macs_per_frame(load_model("lpnet")[0], (48, 64))
    rows = {r["backend"]: r for r in report["results"]}
    assert {"pytorch-fp32 (1 thread)", "onnxruntime-fp32 (1 thread)"} <= set(rows)
    # the ONNX is anlcl's: it reproduces anlcl's eager output
    q = rows["onnxruntime-fp32 (1 thread)"]["psnr_y_vs_eager_db"]
    assert q is None or q > 50
