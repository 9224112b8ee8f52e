"""CoreML target: the .mlpackage spec (image I/O, enumerated sizes, precision, op set, weight quantization).

Prediction needs macOS, so on Linux everything checkable in the saved package is checked and the parity test skips.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ct = pytest.importorskip("coremltools", reason='CoreML export needs coremltools (pip install "derain-edge[coreml]")')

import lpnet  # noqa: E402
from export import coreml  # noqa: E402
from export.job import ExportJob  # noqa: E402
from export.sidecar import read_sidecar, write_sidecar  # noqa: E402

SIZE = (32, 48)  # H, W: the caller's size; the camera defaults are added to it


@pytest.fixture(scope="module")
def model():
    return lpnet.load_pretrained().eval()


@pytest.fixture(scope="module")
def packages(model, tmp_path_factory):
    """One conversion per precision, shared by the module's tests (each takes a few seconds)."""
    out = tmp_path_factory.mktemp("coreml")
    return {p: coreml.export_coreml(model, ExportJob(out_dir=out, stem="lpnet", precision=p, sizes=[SIZE]))
            for p in coreml.PRECISIONS}


def _block(path: Path):
    spec = ct.utils.load_spec(str(path))
    fn = spec.mlProgram.functions["main"]
    return spec, fn.block_specializations[fn.opset]


def _const_value(block, name: str) -> float:
    for op in block.operations:
        if op.type == "const" and op.outputs[0].name == name:
            tensor = op.attributes["val"].immediateValue.tensor
            for field in ("floats", "bytes", "doubles"):
                if tensor.HasField(field):
                    vals = getattr(tensor, field).values
                    if field == "bytes":  # fp16 scalars are stored as raw bytes
                        return float(np.frombuffer(vals, np.float16)[0])
                    return float(vals[0])
    raise AssertionError(f"const {name} not found")


def _torch_conv_count(model, size) -> int:
    """Convolutions (plain and transposed) the model runs for one frame, counted from a PyTorch trace."""
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.jit.trace(model, torch.rand(1, 3, *size)).inlined_graph
    return sum(1 for n in graph.nodes() if n.kind() == "aten::_convolution")


def test_one_package_per_precision_with_contract(packages):
    for precision, exported in packages.items():
        assert len(exported) == 1
        e = exported[0]
        assert e.path.name == f"lpnet_{precision}.mlpackage" and e.path.is_dir()
        assert (e.target, e.format, e.precision) == ("coreml", "mlpackage", precision)
        assert e.sizes[0] == list(SIZE)
        assert [tuple(s) for s in e.sizes] == coreml.enumerated_sizes([SIZE])
        assert e.versions["coremltools"] == ct.__version__
        assert e.inputs[0]["name"] == "rainy" and e.outputs[0]["name"] == "derained"


def test_exported_fills_a_valid_sidecar(packages, tmp_path):
    """The I/O entries must satisfy the one sidecar schema the runtime reads."""
    e = packages["fp16"][0]
    target = tmp_path / e.path.name
    sidecar = write_sidecar(target, {
        "target": e.target, "format": e.format, "precision": e.precision, "model": "lpnet",
        "weights_sha256": "0" * 64, "inputs": e.inputs, "outputs": e.outputs, "sizes": e.sizes,
        "versions": e.versions, **e.extra})
    data = read_sidecar(sidecar)
    assert data["inputs"][0]["value_range"] == [0, 255] and data["inputs"][0]["color"] == "RGB"
    assert data["coreml"]["enumerated_shapes"][0] == [1, 3, *SIZE]


def test_image_input_and_output_rgb(packages):
    spec, _ = _block(packages["fp16"][0].path)
    (inp,), (out,) = spec.description.input, spec.description.output
    assert inp.name == "rainy" and inp.type.WhichOneof("Type") == "imageType"
    assert inp.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert out.name == "derained" and out.type.WhichOneof("Type") == "imageType"
    assert out.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert spec.specificationVersion == 8  # iOS 17 ML program


def test_enumerated_shapes_not_ranges(packages):
    """Enumerated sizes keep the Neural Engine; the input must not be a flexible range."""
    spec, _ = _block(packages["fp16"][0].path)
    image = spec.description.input[0].type.imageType
    assert image.WhichOneof("SizeFlexibility") == "enumeratedSizes"
    sizes = [(s.height, s.width) for s in image.enumeratedSizes.sizes]
    assert sizes == coreml.enumerated_sizes([SIZE])
    assert set(coreml.DEFAULT_SIZES) <= set(sizes)
    assert (image.height, image.width) == SIZE  # default = the caller's first size


def test_input_scaled_to_unit_range_and_output_to_255(packages):
    _, block = _block(packages["fp32"][0].path)
    ops = list(block.operations)
    first = next(op for op in ops if op.type != "const")
    assert first.type == "mul" and first.inputs["x"].arguments[0].name == "rainy"
    assert _const_value(block, first.inputs["y"].arguments[0].name) == pytest.approx(1 / 255)
    producer = {o.name: op for op in ops for o in op.outputs}
    last = producer["derained"]
    assert last.type == "mul"  # the wrapper's × 255 after the model's clamp
    assert _const_value(block, last.inputs["y"].arguments[0].name) == pytest.approx(255.0)
    assert producer[last.inputs["x"].arguments[0].name].type == "clip"


def test_op_set_matches_the_model(packages, model):
    ops = coreml.mil_ops(packages["fp16"][0].path)
    unexpected = set(ops) - coreml.EXPECTED_OPS
    assert not unexpected, f"unexpected MIL ops {unexpected}"
    assert ops["conv"] + ops["conv_transpose"] == _torch_conv_count(model, SIZE)
    assert ops["conv_transpose"] > 0 and ops["leaky_relu"] > 0


def test_fp16_compute_and_fp32_compute(packages):
    def fp16_consts(path):
        _, block = _block(path)
        conv_w = [op.inputs["weight"].arguments[0].name for op in block.operations if op.type == "conv"]
        return conv_w

    fp16 = coreml.mil_ops(packages["fp16"][0].path)
    fp32 = coreml.mil_ops(packages["fp32"][0].path)
    assert fp16["cast"] >= 2 and fp32["cast"] == 0  # fp16: input cast to fp16, output back to fp32
    assert all(n.endswith("_to_fp16") for n in fp16_consts(packages["fp16"][0].path))
    assert not any("fp16" in n for n in fp16_consts(packages["fp32"][0].path))
    assert packages["fp16"][0].extra["coreml"]["compute_precision"] == "fp16"
    assert packages["fp32"][0].extra["coreml"]["compute_precision"] == "fp32"


def _weight_bytes(path: Path) -> int:
    return (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size


def test_int8_weights_are_quantized_and_smaller(packages, model):
    e = packages["int8"][0]
    ops = coreml.mil_ops(e.path)
    learned = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    big = [m for m in learned if m.weight.numel() >= 16]
    assert ops["constexpr_affine_dequantize"] >= len(big), "larger conv weights must be stored as int8"
    assert e.extra["coreml"]["weight_quantization"]["quantized_tensors"] == ops["constexpr_affine_dequantize"]
    assert coreml.mil_ops(packages["fp16"][0].path)["constexpr_affine_dequantize"] == 0
    assert _weight_bytes(e.path) < _weight_bytes(packages["fp16"][0].path) < _weight_bytes(packages["fp32"][0].path)


def test_runner_only_on_macos(packages):
    e = packages["fp16"][0]
    if sys.platform == "darwin":
        assert e.runner is not None and e.skip_reason is None
    else:
        assert e.runner is None and e.skip_reason == coreml.NO_PREDICT_REASON


@pytest.mark.skipif(sys.platform != "darwin", reason="CoreML prediction needs macOS")
@pytest.mark.parametrize("precision, min_db", [("fp32", 45.0), ("fp16", 45.0), ("int8", 38.0)])
def test_parity_on_macos(packages, model, precision, min_db):
    """8-bit image I/O bounds the fp32 parity at about 50 dB; fp16/int8 must stay close to it."""
    from derain_edge.metrics import psnr_y

    rng = np.random.default_rng(0)
    x = rng.random((1, 3, *SIZE), dtype=np.float32)
    x = np.round(x * 255) / 255
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = packages[precision][0].runner(x)
    assert got.shape == ref.shape
    to_u8 = lambda a: (np.clip(a[0].transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    assert psnr_y(to_u8(got), to_u8(ref)) >= min_db


def test_reexport_replaces_atomically(model, packages, tmp_path):
    out = packages["fp32"][0].path.parent
    again = coreml.export_coreml(model, ExportJob(out_dir=out, stem="lpnet_fp32", precision="fp32", sizes=[SIZE]))[0]
    assert again.path == out / "lpnet_fp32.mlpackage"  # stem already naming the precision is kept
    assert coreml.mil_ops(again.path) == coreml.mil_ops(packages["fp32"][0].path)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"


def test_interrupted_save_leaves_nothing(tmp_path):
    class HalfSaved:
        def save(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "Manifest.json").write_text("{}")
            raise KeyboardInterrupt("killed mid-save")

    with pytest.raises(KeyboardInterrupt):
        coreml._save_atomic(HalfSaved(), tmp_path / "m.mlpackage")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(model, tmp_path):
    with pytest.raises(coreml.CoreMLExportError, match="int16x8"):
        coreml.export_coreml(model, ExportJob(out_dir=tmp_path, stem="lpnet", precision="int16x8", sizes=[SIZE]))
    with pytest.raises(coreml.CoreMLExportError, match="positive"):
        coreml.export_coreml(model, ExportJob(out_dir=tmp_path, stem="lpnet", precision="fp16", sizes=[(0, 48)]))
    with pytest.raises(coreml.CoreMLExportError, match="height, width"):
        coreml.enumerated_sizes(["480x640"])
    assert list(tmp_path.iterdir()) == []


def test_unconvertible_model_gives_clear_error(tmp_path):
    class CumMax(torch.nn.Module):
        def forward(self, x):
            return x.cummax(dim=3).values

    with pytest.raises(coreml.CoreMLExportError, match="cummax"):
        coreml.export_coreml(CumMax().eval(),
                             ExportJob(out_dir=tmp_path, stem="bad", precision="fp16", sizes=[(16, 16)]))
    assert not any(p.suffix == ".mlpackage" for p in tmp_path.iterdir())
