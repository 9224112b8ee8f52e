"""The model registry (derain_edge.registry): timm-style register_model / create_model / list_models."""
import pytest
import torch

from derain_edge.registry import ExportHints, create_model, get_spec, list_models, load_model, register_model


def test_builtin_models_are_registered_in_order():
    assert list_models()[:2] == ["lpnet", "anlcl"]


@pytest.mark.parametrize("name", ["lpnet", "anlcl"])
def test_create_model_gives_eval_mode_with_the_shipped_weights(name):
    spec = get_spec(name)
    if not spec.default_weights().is_file():
        pytest.skip(f"no shipped {name} weights in this checkout")
    model = create_model(name)
    assert not model.training
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    _, path = load_model(name)
    assert path == spec.default_weights()


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'nope'; choose from: lpnet, anlcl"):
        create_model("nope")


def test_export_hints_are_per_model():
    assert get_spec("lpnet").export_hints.int8_sensitive_weights == ("subnets.4.block1.weight", "pyramid.up.weight")
    assert get_spec("anlcl").export_hints.int8_sensitive_weights == ()
    model = create_model("lpnet")
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    assert set(get_spec("lpnet").export_hints.int8_sensitive_weights) <= names


def test_a_registered_plugin_is_listed_and_built(monkeypatch):
    from derain_edge import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    built = []

    @register_model("toy", default_weights=lambda: __import__("pathlib").Path("none"), description="identity",
                    export_hints=ExportHints(multiple_of=4))
    def _toy(weights=None):
        built.append(weights)
        return torch.nn.Identity().eval()

    assert "toy" in list_models()
    assert isinstance(create_model("toy"), torch.nn.Identity) and built == [None]
    assert get_spec("toy").export_hints.multiple_of == 4
