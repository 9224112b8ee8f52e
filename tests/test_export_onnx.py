"""ONNX target: torch_to_onnx keeps dynamic H×W (checked at odd sizes), fixed sizes, names, opset, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxslim")

import lpnet  # noqa: E402
from export.onnx_export import onnx_io, opset_of, ort_runner, torch_to_onnx  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return lpnet.load_pretrained()


@pytest.fixture(scope="module")
def dynamic_onnx(model, tmp_path_factory):
    return torch_to_onnx(model, tmp_path_factory.mktemp("onnx") / "lpnet.onnx")


def _torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (17, 31), (33, 2), (64, 96), (101, 77)])
def test_dynamic_graph_matches_pytorch_at_odd_sizes(model, dynamic_onnx, hw):
    x = np.random.default_rng(sum(hw)).random((1, 3, *hw), dtype=np.float32)
    y = ort_runner(dynamic_onnx)(x)
    assert y.shape == x.shape
    assert np.abs(y - _torch(model, x)).max() < 1e-5


def test_contract_names_dims_opset_checker(dynamic_onnx):
    proto = onnx.load(str(dynamic_onnx))
    onnx.checker.check_model(proto, full_check=True)
    inputs, outputs = onnx_io(dynamic_onnx)
    assert [i["name"] for i in inputs] == ["rainy"] and [o["name"] for o in outputs] == ["derained"]
    assert inputs[0]["shape"] == [1, 3, "height", "width"] and outputs[0]["shape"] == [1, 3, "height", "width"]
    assert inputs[0]["dtype"] == "float32" and inputs[0]["layout"] == "NCHW"
    assert opset_of(dynamic_onnx) == 20
    ops = {n.op_type for n in proto.graph.node}
    assert "Conv" in ops and "ConvTranspose" in ops
    assert not any(p.name.startswith(".") for p in dynamic_onnx.parent.iterdir()), "temporary file left behind"


def test_fixed_size_and_batch(model, tmp_path):
    path = torch_to_onnx(model, tmp_path / "fixed.onnx", size=(24, 40), batch=2, opset=18)
    inputs, outputs = onnx_io(path)
    assert inputs[0]["shape"] == [2, 3, 24, 40] and outputs[0]["shape"] == [2, 3, 24, 40]
    assert opset_of(path) == 18
    x = np.random.default_rng(0).random((2, 3, 24, 40), dtype=np.float32)
    assert np.abs(ort_runner(path)(x) - _torch(model, x)).max() < 1e-5
    with pytest.raises(Exception):
        ort_runner(path)(np.zeros((2, 3, 32, 40), np.float32))  # the fixed size is really fixed


@pytest.mark.parametrize("kwargs, message", [
    ({"size": (0, 5)}, "at least 1x1"),
    ({"size": "big"}, "size must be"),
    ({"opset": 17}, "below 18"),
    ({"batch": 0}, "batch"),
])
def test_bad_arguments(model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        torch_to_onnx(model, tmp_path / "bad.onnx", **kwargs)
    assert not (tmp_path / "bad.onnx").exists()


def test_failed_export_leaves_nothing_under_the_final_name(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    from export.onnx_export import ExportError

    with pytest.raises(ExportError, match="torch.onnx.export failed"):
        torch_to_onnx(Broken(), tmp_path / "broken.onnx")
    assert list(tmp_path.iterdir()) == []
