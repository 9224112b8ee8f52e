"""derain-serve on a real Triton server (PyTriton), its client, and the Triton model repository export.

The server test starts `derain-serve` on 127.0.0.1 with free ports, sends frames of two sizes from two client threads
(HTTP and gRPC), checks every answer equals the in-process Derainer's, then SIGTERMs the server and expects a clean
exit. It skips, with the reason, only where nvidia-pytriton or its stub environment is not installed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _serve_skip_reason() -> str | None:
    try:
        import pytriton.triton  # noqa: F401
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as e:
        return f"nvidia-pytriton/tritonclient not installed ({e}); pip install -c constraints.txt '.[serve]'"
    from runtime.serve import stub_env_problem

    return stub_env_problem()


def _frames():
    rng = np.random.default_rng(7)
    base = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)]
    # rain-like bright streaks so the model really changes the frames
    for f in base:
        f[:, ::7] = 250
    return base


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        if proc.poll() is not None:
            raise AssertionError(f"derain-serve exited with {proc.returncode} before it was ready")
        time.sleep(0.2)
    raise AssertionError(f"derain-serve not ready after {timeout} s")


def test_server_matches_in_process_derainer(tmp_path):
    reason = _serve_skip_reason()
    if reason:
        pytest.skip(reason)
    from runtime import Derainer
    from runtime.serve import free_port
    from runtime.triton_client import RemoteDerainer

    ready = tmp_path / "ready.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "runtime.serve", "--threads", "1", "--http-port", str(free_port()),
           "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), "--max-batch", "4",
           "--queue-delay-us", "20000", "--startup-timeout", "120", "--log-file", str(tmp_path / "triton.log"),
           "--ready-file", str(ready)]
    log = open(tmp_path / "serve.out", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_file(ready, proc, 180)
        http_url, grpc_url = ready.read_text().split()
        frames = _frames()
        reference = Derainer(threads=1)
        expected = [reference(f) for f in frames]
        results: dict[str, list] = {}
        errors: list[BaseException] = []

        def client(url):
            try:
                with RemoteDerainer(url, timeout=60) as remote:
                    outs = [remote(frames[i % 2]) for i in range(4)]
                    outs += remote.batch([frames[0], frames[1], frames[0]])
                    results[url] = outs
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=client, args=(u,)) for u in (http_url, grpc_url)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a client thread did not finish in 120 s"
        assert not errors, errors
        for url, outs in results.items():
            want = [expected[i % 2] for i in range(4)] + [expected[0], expected[1], expected[0]]
            assert len(outs) == len(want)
            for got, exp in zip(outs, want):
                assert got.shape == exp.shape and got.dtype == np.uint8
                np.testing.assert_array_equal(got, exp, err_msg=url)
        assert any(not np.array_equal(e, f) for e, f in zip(expected, frames))  # the model did something
        stats = RemoteDerainer(http_url).statistics()["model_stats"][0]
        assert stats["inference_stats"]["fail"]["count"] == 0
        assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in stats["batch_stats"]) == 14

        # derain-run --server: the demo stream through the server, same counters and JSON as in process
        import json

        from runtime.cli import main as run_main

        summary = tmp_path / "run.json"
        assert run_main(["demo", str(tmp_path / "out.mkv"), "--headless", "--frames", "3", "--size", "64x48",
                         "--server", grpc_url, "--json", str(summary)]) == 0
        report = json.loads(summary.read_text())
        assert report["frames"] == 3 and report["backend"].startswith("triton derain@")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError("derain-serve did not stop within 60 s of SIGTERM")
        log.close()
    out = (tmp_path / "serve.out").read_text()
    assert rc == 0, out[-3000:]
    assert "SIGTERM, shutting down" in out and "errors 0" in out


def test_client_reports_unreachable_server_in_bounded_time():
    pytest.importorskip("tritonclient.http")
    from runtime.serve import free_port
    from runtime.triton_client import RemoteDerainer, ServerError

    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="127.0.0.1"):
        RemoteDerainer(f"http://127.0.0.1:{port}", wait_ready=1.0)
    remote = RemoteDerainer(f"127.0.0.1:{port}", wait_ready=None, timeout=2, retry_for=1.0)
    with pytest.raises(ServerError, match="attempts"):
        remote(np.zeros((8, 8, 3), np.uint8))
    assert time.monotonic() - t0 < 20


def test_derain_run_server_unreachable_is_an_error(tmp_path, capsys):
    pytest.importorskip("tritonclient.http")
    from runtime.cli import main as run_main
    from runtime.serve import free_port

    t0 = time.monotonic()
    rc = run_main(["demo", "--headless", "--frames", "2", "--size", "32x24", "--server",
                   f"http://127.0.0.1:{free_port()}", "--server-timeout", "1"])
    assert rc == 2 and "error:" in capsys.readouterr().err
    assert time.monotonic() - t0 < 30


def test_derain_run_server_refuses_engine_options(capsys):
    from runtime.cli import main as run_main

    assert run_main(["demo", "--headless", "--server", "http://127.0.0.1:1", "--model", "x.onnx"]) == 2
    assert "derain-serve" in capsys.readouterr().err


def test_server_url_parsing():
    from runtime.triton_client import parse_server_url

    assert parse_server_url("http://10.0.0.2:9000") == ("http", "10.0.0.2:9000")
    assert parse_server_url("grpc://box") == ("grpc", "box:8001")
    assert parse_server_url("box") == ("http", "box:8000")
    with pytest.raises(ValueError, match="grpc://"):
        parse_server_url("rtsp://cam/stream")


def test_stub_env_problem_names_the_fix(tmp_path):
    from runtime.serve import stub_env_problem

    assert "--setup-stub" in stub_env_problem(tmp_path / "none")


def test_infer_callback_keeps_request_order_and_sizes():
    """The PyTriton callback without a server: requests of two sizes in one call come back in order."""
    from runtime.serve import INPUT, OUTPUT, DerainServer

    class Fake:
        backend = "fake"

        def batch(self, frames):
            return [255 - f for f in frames]

    server = DerainServer(Fake(), http_port=1, grpc_port=2, metrics_port=3)
    a, b = np.ones((2, 4, 5, 3), np.uint8), np.full((1, 6, 7, 3), 3, np.uint8)
    out = server._infer([{INPUT: a}, {INPUT: b}])
    np.testing.assert_array_equal(out[0][OUTPUT], 255 - a)
    np.testing.assert_array_equal(out[1][OUTPUT], 255 - b)
    assert server.batch_stats()["frames_per_call"] == {3: 1}


def test_export_triton_repository(tmp_path):
    """derain-export --target triton: config.pbtxt parses with Triton's schema and agrees with the ONNX graph and the
    sidecar; a config that disagrees is caught by name."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tritonclient.grpc")
    from export.cli import main as export_main
    from export.triton import TritonRepositoryError, parse_config, validate_repository

    assert export_main(["--target", "triton", "--out", str(tmp_path), "--val-limit", "2"]) == 0
    model_dir = tmp_path / "triton" / "lpnet_fp32"
    summary = validate_repository(model_dir)
    assert summary == {"model": "lpnet_fp32", "max_batch_size": 8, "inputs": ["rainy"], "outputs": ["derained"],
                       "configs": ["config.pbtxt", "config.tensorrt_plan.pbtxt"], "sidecar": True}
    cfg = parse_config(model_dir / "config.pbtxt")
    assert cfg.platform == "onnxruntime_onnx" and cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [3, -1, -1]
    assert "trtexec" in (model_dir / "make_plan.sh").read_text()
    # the repository's model.onnx batches: the runtime runs it, and a batch equals frame-by-frame
    from runtime import Derainer

    derain = Derainer(model_dir / "1" / "model.onnx", threads=1)
    frames = _frames()
    np.testing.assert_array_equal(derain.batch([frames[0], frames[0]])[1], derain(frames[0]))

    text = (model_dir / "config.pbtxt").read_text()
    (model_dir / "config.pbtxt").write_text(text.replace('name: "rainy"', 'name: "input"'))
    with pytest.raises(TritonRepositoryError, match="input names"):
        validate_repository(model_dir)
    (model_dir / "config.pbtxt").write_text(text.replace("TYPE_FP32", "TYPE_FP16", 1))
    with pytest.raises(TritonRepositoryError, match="TYPE_FP16"):
        validate_repository(model_dir)
    (model_dir / "config.pbtxt").write_text(text.replace("max_batch_size: 8", "max_batch_size: eight"))
    with pytest.raises(TritonRepositoryError, match="config.pbtxt"):
        validate_repository(model_dir)
