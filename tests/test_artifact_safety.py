"""Untrusted artifacts and sidecars: each bad case ends in a one-line BackendError naming the problem."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import lpnet  # noqa: E402
from export.sidecar import write_sidecar  # noqa: E402
from runtime import BackendError, Derainer  # noqa: E402


def _one_line(excinfo, *words):
    text = str(excinfo.value)
    assert "\n" not in text, text
    for w in words:
        assert w in text, (w, text)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from export.onnx_export import onnx_io, torch_to_onnx

    folder = tmp_path_factory.mktemp("good")
    path = folder / "lpnet_fp32.onnx"
    torch_to_onnx(lpnet.load_pretrained(), path)
    inputs, outputs = onnx_io(path)
    write_sidecar(path, {"target": "onnx", "format": "onnx", "precision": "fp32", "model": "lpnet",
                         "weights_sha256": "0" * 64, "inputs": inputs, "outputs": outputs, "sizes": "dynamic"})
    return path


def _copy(good, tmp_path):
    dst = tmp_path / good.name
    shutil.copy(good, dst)
    shutil.copy(str(good) + ".json", str(dst) + ".json")
    return dst


def _edit(path, **changes):
    side = path.with_name(path.name + ".json")
    data = json.loads(side.read_text())
    data.update(changes)
    side.write_text(json.dumps(data))


def test_good_artifact_loads(good):
    d = Derainer(str(good), threads=1)
    assert d(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30, 3)


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/x.onnx", ".."])
def test_sidecar_artifact_outside_its_folder_is_refused(good, tmp_path, name):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    art = _copy(good, bundle)
    _edit(art, artifact=name)
    with pytest.raises(BackendError) as e:
        Derainer(str(bundle), threads=1)
    _one_line(e, "artifact")
    with pytest.raises(BackendError):
        Derainer(str(art) + ".json", threads=1)


def test_symlink_out_of_the_folder_is_refused(good, tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    art = _copy(good, bundle)
    (bundle / "link.onnx").symlink_to(good)
    _edit(art, artifact="link.onnx")
    with pytest.raises(BackendError) as e:
        Derainer(str(bundle), threads=1)
    _one_line(e, "outside")


@pytest.mark.parametrize("field, value", [("weights_sha256", "1" * 64), ("value_range", None), ("precision", "fp16"),
                                          ("sizes", [{"width": 64, "height": 48}])])
def test_edited_sidecar_field_is_refused_by_name(good, tmp_path, field, value):
    art = _copy(good, tmp_path)
    if field == "value_range":
        data = json.loads((tmp_path / (art.name + ".json")).read_text())
        data["inputs"][0]["value_range"] = [0.0, 255.0]
        (tmp_path / (art.name + ".json")).write_text(json.dumps(data))
        field = "inputs"
    else:
        _edit(art, **{field: value})
    with pytest.raises(BackendError) as e:
        Derainer(str(art), threads=1)
    _one_line(e, f"'{field}'", "changed after export")


def test_replaced_artifact_is_refused(good, tmp_path):
    art = _copy(good, tmp_path)
    model = onnx.load(str(art))
    model.doc_string = "changed"
    onnx.save(model, str(art))
    with pytest.raises(BackendError) as e:
        Derainer(str(art), threads=1)
    _one_line(e, "changed after export", "artifact_sha256")


@pytest.mark.parametrize("sizes, words", [([[-5, 0]], "between 1 and"), ([[100000, 100000]], "between 1 and"),
                                          ("x", "sizes")])
def test_absurd_sizes_are_a_clear_error(good, tmp_path, sizes, words):
    art = _copy(good, tmp_path)
    _edit(art, sizes=sizes, integrity=None)  # a hand-edited sidecar without an integrity record
    with pytest.raises(BackendError) as e:
        Derainer(str(art), threads=1)
    _one_line(e, words)


def test_sidecar_checked_against_the_graph(good, tmp_path):
    art = _copy(good, tmp_path)
    data = json.loads((tmp_path / (art.name + ".json")).read_text())
    data["integrity"] = None
    bad_layout = json.loads(json.dumps(data))
    bad_layout["inputs"][0]["layout"] = "NHWC"
    (tmp_path / (art.name + ".json")).write_text(json.dumps(bad_layout))
    with pytest.raises(BackendError) as e:
        Derainer(str(art), threads=1)
    _one_line(e, "layout")
    bad_name = json.loads(json.dumps(data))
    bad_name["inputs"][0]["name"] = "image"
    (tmp_path / (art.name + ".json")).write_text(json.dumps(bad_name))
    with pytest.raises(BackendError) as e:
        Derainer(str(art), threads=1)
    _one_line(e, "inputs[0].name", "'image'")
    bad_range = json.loads(json.dumps(data))
    bad_range["inputs"][0]["value_range"] = [0.0, 255.0]
    (tmp_path / (art.name + ".json")).write_text(json.dumps(bad_range))
    with pytest.raises(BackendError) as e:  # no integrity record: the probe frame catches it
        Derainer(str(art), threads=1)
    _one_line(e, "value_range")


def _tiny_onnx(path, out_shape_fn, in_channels=3):
    """A hand-made ONNX graph: input N×C×H×W, output from a few ops."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, "h", "w"])
    nodes, outputs = out_shape_fn()
    graph = helper.make_graph(nodes, "g", [x], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def test_output_contract_checked_with_a_probe_frame(tmp_path):
    def to_1x1():  # N×3×H×W → N×3×1×1
        return ([helper.make_node("GlobalAveragePool", ["x"], ["y"])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 1, 1])])

    def to_gray():  # N×3×H×W → N×1×H×W
        axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
        return ([helper.make_node("Constant", [], ["axes"], value=axes),
                 helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "c", "h", "w"])])

    for name, fn in (("pool.onnx", to_1x1), ("gray.onnx", to_gray)):
        path = _tiny_onnx(tmp_path / name, fn)
        with pytest.raises(BackendError) as e:
            Derainer(str(path), threads=1)
        _one_line(e, "output contract")


def test_one_channel_input_fails_at_load(tmp_path):
    def ident():
        return ([helper.make_node("Identity", ["x"], ["y"])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "h", "w"])])

    path = _tiny_onnx(tmp_path / "one.onnx", ident, in_channels=1)
    with pytest.raises(BackendError) as e:
        Derainer(str(path), threads=1)
    _one_line(e, "1 channel")


def test_empty_onnx_is_a_clear_error(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(BackendError) as e:
        Derainer(str(tmp_path / "empty.onnx"), threads=1)
    _one_line(e, "empty", "0 bytes")
    (tmp_path / "junk.onnx").write_bytes(b"\x00" * 10)
    with pytest.raises(BackendError) as e:
        Derainer(str(tmp_path / "junk.onnx"), threads=1)
    _one_line(e, "ONNX")
