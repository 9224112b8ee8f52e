"""The fast default (issue 11 §2): Derainer() exports the shipped weights to ONNX once, caches them (keyed by the
weights' sha256 and the exporting libraries' versions), runs the fastest engine installed with a thread count that
does not collapse on a busy machine; fp32 unless asked; PyTorch when no export is possible."""
from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest

from runtime import BackendError, Derainer
from runtime import auto


def _frame(h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    img = np.linspace(0, 200, w)[None, :, None] + rng.normal(0, 12, (h, w, 3))
    img[rng.random((h, w)) < 0.05] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache folder: the first Derainer() of this module exports into it."""
    folder = tmp_path_factory.mktemp("derain-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERAIN_EDGE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def default(cache):
    return Derainer(threads=1)


@pytest.fixture(scope="module")
def eager():
    return Derainer(backend="pytorch", threads=1)


# ------------------------------------------------------------------------------------------------ threads
def test_thread_rule(monkeypatch):
    monkeypatch.delenv("DERAIN_EDGE_THREADS", raising=False)
    cores = min(auto.available_cpus(), auto.physical_cores())
    assert auto.default_threads(load=0.0) == cores           # an idle machine: every (physical) core
    assert auto.default_threads(load=10.0 * cores) == 1      # a busy one: one thread, never zero
    assert auto.default_threads(load=cores - 0.4) == 1
    monkeypatch.setenv("DERAIN_EDGE_THREADS", "3")
    assert auto.default_threads(load=100.0) == 3


def test_every_backend_takes_the_rule_by_default(monkeypatch):
    import lpnet
    from runtime.backends import TorchBackend

    monkeypatch.setenv("DERAIN_EDGE_THREADS", "1")
    assert TorchBackend(lpnet.LPNet()).threads == 1  # torch's own default would be one per core


def test_engine_order():
    assert auto.engine_order("fp32", device="cpu") == ["onnxruntime", "openvino", "opencv", "pytorch"]
    assert auto.engine_order("int8", device="cpu") == ["openvino", "onnxruntime"]
    assert auto.engine_order("bf16", device="cpu") == ["openvino"]


# ------------------------------------------------------------------------------------------------ the default
def test_default_is_onnx_exported_once_and_cached(cache, default, eager):
    assert default.backend == "onnxruntime-fp32"  # onnxruntime is installed with the [onnx] extra
    assert default.engine.exported and default.engine.threads == 1
    files = sorted((cache / "onnx").glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith("lpnet-") and files[0].name.endswith("_fp32.onnx")
    meta = json.loads(files[0].with_name(files[0].name + ".meta.json").read_text())
    assert meta["onnx_sha256"] == hashlib.sha256(files[0].read_bytes()).hexdigest()
    assert set(auto.EXPORT_PACKAGES) <= set(meta["versions"]) and meta["precision"] == "fp32"
    from lpnet.weights import shipped_weights_path

    assert meta["weights_sha256"] == hashlib.sha256(shipped_weights_path().read_bytes()).hexdigest()
    assert files[0].name.split("-")[1] == meta["weights_sha256"][:16]
    mtime = files[0].stat().st_mtime_ns

    again = Derainer(threads=1)  # a second start reuses the file
    assert again.backend == "onnxruntime-fp32" and not again.engine.exported
    assert files[0].stat().st_mtime_ns == mtime
    assert not list((cache / "onnx").glob(".*tmp*"))  # written atomically: no temporary left behind
    frame = _frame()
    assert np.abs(again(frame).astype(int) - eager(frame).astype(int)).max() <= 1
    assert "onnxruntime-fp32, 1 thread" in again.describe()


def test_cache_key_follows_weights_and_library_versions(tmp_path, default, monkeypatch):
    import lpnet

    net = lpnet.LPNet()
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"weights one")
    b.write_bytes(b"weights two")
    wa, va = auto._cache_key(a, net)
    wb, vb = auto._cache_key(b, net)
    assert wa != wb and va == vb
    monkeypatch.setattr(auto, "export_versions", lambda: {"torch": "99.0", "opset": "20"})
    w2, v2 = auto._cache_key(a, net)
    assert w2 == wa and v2 != va  # another torch/onnx/onnxscript/onnxslim/opset → another file


def test_a_damaged_cache_file_is_not_used(cache, default, tmp_path):
    cached = next((cache / "onnx").glob("*_fp32.onnx"))
    assert auto._valid(cached)
    copy = tmp_path / cached.name
    copy.write_bytes(cached.read_bytes()[:-100] + b"\0" * 100)
    (tmp_path / (cached.name + ".meta.json")).write_text(cached.with_name(cached.name + ".meta.json").read_text())
    assert not auto._valid(copy)                           # checksum mismatch → exported again on next use
    assert not auto._valid(tmp_path / "missing.onnx")


@pytest.mark.parametrize("engine", ["openvino", "opencv"])
def test_named_onnx_engines_run_the_cached_export(engine, default, eager):
    if engine == "openvino" and importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino not installed (optional)")
    d = Derainer(backend=engine, threads=1)
    assert d.backend == f"{engine}-fp32" and not d.engine.exported
    frame = _frame(29, 41, 3)
    assert np.abs(d(frame).astype(int) - eager(frame).astype(int)).max() <= 1


def test_fp32_unless_asked(default):
    assert default.engine.precision == "fp32"
    if importlib.util.find_spec("openvino") is None or not auto._ov_supports("bf16"):
        with pytest.raises(BackendError, match="bf16"):
            Derainer(precision="bf16", threads=1)
    else:
        assert Derainer(precision="bf16", threads=1).backend == "openvino-bf16"


def test_without_the_exporter_pytorch_runs(cache, monkeypatch):
    monkeypatch.setattr(auto, "_can_export", lambda: "missing onnxscript (pip install \"derain-edge[onnx]\")")
    d = Derainer(threads=1)
    assert d.backend == "pytorch-fp32"
    assert "skipped onnxruntime: missing onnxscript" in d.describe()


def test_unwritable_cache_falls_back_to_pytorch(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DERAIN_EDGE_CACHE", str(blocker))
    d = Derainer(threads=1)
    assert d.backend == "pytorch-fp32" and "cannot write the ONNX cache" in d.describe()


def test_module_and_explicit_pytorch_stay_in_pytorch(default):
    import lpnet

    assert Derainer(lpnet.load_pretrained(), threads=1).backend == "pytorch-fp32"  # a live module: no export
    assert Derainer(backend="pytorch", threads=1).backend == "pytorch-fp32"
