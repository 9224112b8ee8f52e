"""ANLCL-lite generator and discriminator: parameter budget, I/O contract (any H×W), decomposition, export, weights."""
import numpy as np
import pytest
import torch

from anlcl_lite import (Decomposer, GeneratorConfig, LightGenerator, PatchDiscriminator, count_parameters,
                        load_pretrained, load_weights, save_weights)
from anlcl_lite.discriminator import receptive_field


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def test_default_image_branch_is_under_50k_parameters():
    assert count_parameters(LightGenerator()) <= 50_000
    assert count_parameters(LightGenerator(GeneratorConfig(width=32, blocks=16))) > 250_000  # NLCL-sized is not


@pytest.mark.parametrize("down", [False, True])
@pytest.mark.parametrize("size", [(32, 48), (33, 47), (5, 7), (1, 9)])
def test_any_size_in_same_size_out(down, size):
    g = _randomise(LightGenerator(GeneratorConfig(width=8, blocks=2, down=down))).eval()
    x = torch.rand(2, 3, *size)
    y = g(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_untrained_branches_are_identity_and_zero():
    dec = Decomposer(GeneratorConfig(width=8, blocks=1)).eval()
    x = torch.rand(1, 3, 20, 24)
    b, r = dec(x)
    assert torch.equal(b, x)
    assert torch.count_nonzero(r) == 0


def test_bad_input_is_a_clear_error():
    g = LightGenerator()
    with pytest.raises(ValueError, match="N×3×H×W"):
        g(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="too small"):
        g(torch.rand(1, 3, 1, 1))
    with pytest.raises(ValueError, match="norm"):
        GeneratorConfig(norm="batch")


def test_patchgan_is_70x70_and_features_follow_strides():
    assert receptive_field(3) == 70
    d = PatchDiscriminator(ndf=8)
    x = torch.rand(1, 3, 64, 64)
    feats = d.features(x, (0, 1, 2))
    assert [f.shape[-1] for f in feats] == [32, 16, 8]
    assert [f.shape[1] for f in feats] == d.channels[:3]
    # receptive field by gradient (InstanceNorm, which is image-global, removed for the check): output pixel
    # (8, 8) depends on exactly a 70×70 window of the input
    for block in d.blocks[1:]:
        block[1] = torch.nn.Identity()
    x = torch.rand(1, 3, 140, 140, requires_grad=True)
    d(x)[0, 0, 8, 8].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1)).sum(1)).flatten()
    cols = torch.nonzero(x.grad.abs().sum((0, 1)).sum(0)).flatten()
    assert int(rows[-1] - rows[0]) + 1 == 70 and int(cols[-1] - cols[0]) + 1 == 70


@pytest.mark.parametrize("down", [False, True])
def test_image_branch_exports_to_onnx_with_dynamic_size(tmp_path, down):
    ort = pytest.importorskip("onnxruntime")
    g = _randomise(LightGenerator(GeneratorConfig(down=down))).eval()
    path = tmp_path / "gb.onnx"
    # the dynamo exporter (the one docs/toolchain.md recommends for onnx2tf) for the default, legacy for the variant
    if not down:
        dims = ({2: torch.export.Dim("h", min=4), 3: torch.export.Dim("w", min=4)},)
        torch.onnx.export(g, (torch.rand(1, 3, 32, 48),), str(path), dynamo=True, input_names=["input"],
                          output_names=["output"], dynamic_shapes=dims)
    else:
        torch.onnx.export(g, (torch.rand(1, 3, 32, 48),), str(path), dynamo=False, input_names=["input"],
                          output_names=["output"], opset_version=17,
                          dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 32, 48), (1, 3, 37, 21)]:
        x = torch.rand(*shape)
        y = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert y.shape == shape
        assert np.abs(y - g(x).detach().numpy()).max() < 1e-4


def test_weights_round_trip_rebuild_the_architecture(tmp_path):
    cfg = GeneratorConfig(width=12, blocks=2, down=True)
    g = _randomise(LightGenerator(cfg), seed=3)
    path = save_weights(g, tmp_path / "gb.safetensors", {"step": 7})
    loaded, meta = load_weights(path)
    assert loaded.config == cfg and meta == {"step": 7}
    x = torch.rand(1, 3, 17, 23)
    assert torch.equal(loaded.eval()(x), g.eval()(x))
    model = load_pretrained(path)
    assert not model.training


def test_bad_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable"):
        load_weights(bad)
    import lpnet

    foreign = lpnet.save_weights(lpnet.LPNet(), tmp_path / "lpnet.safetensors")
    with pytest.raises(ValueError, match="does not hold ANLCL-lite"):
        load_weights(foreign)
