"""`derain-eval --model anlcl` and the shipped ANLCL-lite weights."""
import json

import pytest
import torch

import anlcl_lite
from anlcl_lite import GeneratorConfig, LightGenerator, save_weights
from anlcl_lite.weights import shipped_weights_path
from derain_edge.commands.evaluate import main
from derain_edge.registry import list_models, load_model


def test_eval_with_given_weights_scores_the_model(tiny_pairs, tmp_path, capsys):
    weights = save_weights(LightGenerator(GeneratorConfig(width=8, blocks=1)), tmp_path / "gb.safetensors")
    out = tmp_path / "r.json"
    assert main(["--model", "anlcl", "--weights", str(weights), "--rainy", str(tiny_pairs.rainy),
                 "--clean", str(tiny_pairs.clean), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["model"] == "anlcl" and record["n"] == 3
    # an untrained G_B is the identity: its scores are the rainy inputs' scores
    assert record["psnr_y"] == pytest.approx(record["input_psnr_y"])
    assert "anlcl" in list_models()


def test_eval_refuses_foreign_weights_clearly(tiny_pairs, untrained_weights, capsys):
    assert main(["--model", "anlcl", "--weights", str(untrained_weights), "--rainy", str(tiny_pairs.rainy),
                 "--clean", str(tiny_pairs.clean)]) == 2
    assert "does not hold ANLCL-lite" in capsys.readouterr().err


def test_shipped_weights_load_in_eval_mode_when_present():
    if not shipped_weights_path().is_file():
        with pytest.raises(ValueError, match="missing"):
            load_model("anlcl")
        pytest.skip("no ANLCL-lite weights shipped in this checkout")
    model = anlcl_lite.load_pretrained()
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) <= 50_000
    x = torch.rand(1, 3, 31, 45)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert not torch.equal(y, x)  # trained: not the identity of an untrained G_B
