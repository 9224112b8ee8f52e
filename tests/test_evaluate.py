"""derain-eval (derain_edge.commands.evaluate): scores, JSON record, saved images, and one-line errors for bad input."""
from __future__ import annotations

import hashlib
import json
import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from derain_edge.commands.evaluate import ImageConversionWarning, evaluate_pairs, main
from derain_edge.registry import list_models
from derain_edge.imageio import read_image
from derain_edge.metrics import psnr_y, ssim_y

from conftest import make_clean, write_png


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    """The single `error: …` line; no traceback anywhere."""
    assert "Traceback" not in err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def strict_json(path):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=no_constants)


# ------------------------------------------------------------------------------------ literature baseline
def test_rain100h_dev_rainy_input_baseline(rain100h_dev, tmp_path, capsys):
    """The published-style baseline: rainy input vs clean on rain100h-dev, 13.87 dB / 0.404 (shared/README.md)."""
    rc, out, err = run(capsys, "--rainy", rain100h_dev / "rainy", "--clean", rain100h_dev / "clean",
                       "--input-only", "--json", tmp_path / "base.json")
    assert rc == 0, err
    rec = strict_json(tmp_path / "base.json")
    assert rec["n"] == 50
    assert rec["psnr_y"] == pytest.approx(13.87, abs=0.01)
    assert rec["ssim_y"] == pytest.approx(0.404, abs=0.002)
    assert rec["input_psnr_y"] == rec["psnr_y"] and rec["input_ssim_y"] == rec["ssim_y"]
    assert rec["model"] is None and rec["weights"] is None
    assert len(rec["per_image"]) == 50
    sizes = {(r["width"], r["height"]) for r in rec["per_image"]}
    assert sizes <= {(480, 320), (320, 480)}
    assert f"{rec['psnr_y']:.2f}" in out  # the mean is printed


# ------------------------------------------------------------------------------------------- happy paths
def test_identity_lpnet_json_table_and_save(tiny_pairs, untrained_weights, tmp_path, capsys):
    save, js = tmp_path / "derained", tmp_path / "res" / "eval.json"
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean,
                       "--weights", untrained_weights, "--json", js, "--save", save)
    assert rc == 0, err
    rec = strict_json(js)
    required = {"psnr_y", "ssim_y", "n", "input_psnr_y", "input_ssim_y", "per_image", "model", "weights",
                "weights_sha256", "command"}
    assert required <= set(rec)
    assert rec["n"] == 3 and rec["model"] == "lpnet"
    assert rec["weights"] == str(untrained_weights)
    assert rec["weights_sha256"] == hashlib.sha256(untrained_weights.read_bytes()).hexdigest()
    assert rec["command"].startswith("derain-eval ") and "--weights" in rec["command"]
    assert str(untrained_weights) in rec["command"]

    # per-image scores, in natural order, against metrics computed here on the generated arrays
    assert [r["name"] for r in rec["per_image"]] == ["1.png", "2.png", "10.png"]
    expected_psnr = [psnr_y(*tiny_pairs.images[n]) for n in tiny_pairs.names]
    expected_ssim = [ssim_y(*tiny_pairs.images[n]) for n in tiny_pairs.names]
    for r, p, s in zip(rec["per_image"], expected_psnr, expected_ssim):
        assert (r["width"], r["height"]) == (40, 32)
        assert r["input_psnr_y"] == pytest.approx(p, abs=1e-9)
        assert r["input_ssim_y"] == pytest.approx(s, abs=1e-9)
        # the untrained LPNet is an exact identity, so the model scores equal the input scores
        assert r["psnr_y"] == pytest.approx(r["input_psnr_y"], abs=1e-9)
        assert r["ssim_y"] == pytest.approx(r["input_ssim_y"], abs=1e-9)
    assert 10 < rec["psnr_y"] < 40  # a real, finite score (rain was added)
    assert rec["psnr_y"] == pytest.approx(np.mean(expected_psnr), abs=1e-9)
    assert rec["ssim_y"] == pytest.approx(np.mean(expected_ssim), abs=1e-9)
    assert rec["input_psnr_y"] == pytest.approx(rec["psnr_y"], abs=1e-9)

    # saved images: one per pair, the right size, equal to the (identity) output; no temp files
    assert sorted(p.name for p in save.iterdir()) == ["1.png", "10.png", "2.png"]
    for name in tiny_pairs.names:
        saved = read_image(save / f"{name}.png")
        assert saved.shape == (32, 40, 3)
        assert np.array_equal(saved, tiny_pairs.images[name][0])
    assert sorted(p.name for p in js.parent.iterdir()) == ["eval.json"]

    # the table: a row per image with its size and scores, then the mean
    lines = out.splitlines()
    for name, p in zip(["1.png", "2.png", "10.png"], expected_psnr):
        row = next(ln for ln in lines if ln.startswith(name + " "))
        assert "40x32" in row and f"{p:.2f}" in row
    assert any(ln.startswith("mean (3)") for ln in lines)
    assert "PSNR-Y" in out and "SSIM-Y" in out


class Gray(nn.Module):
    """Outputs mid-gray 0.5 everywhere: 127.5 must be rounded to a uint8 (128) before scoring."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x * self.p + 0.5


def test_evaluate_pairs_applies_model_and_rounds_output(tiny_pairs, tmp_path):
    model = Gray().train()
    result = evaluate_pairs(model, tiny_pairs.rainy, tiny_pairs.clean, save_dir=tmp_path / "out")
    assert model.training  # evaluation does not leave a caller's model in another mode
    gray = np.full((32, 40, 3), 128, np.uint8)
    for r, name in zip(result["per_image"], tiny_pairs.names):
        rainy, clean = tiny_pairs.images[name]
        assert r["psnr_y"] == pytest.approx(psnr_y(gray, clean), abs=1e-9)
        assert r["ssim_y"] == pytest.approx(ssim_y(gray, clean), abs=1e-9)
        assert r["psnr_y"] != pytest.approx(r["input_psnr_y"], abs=0.1)
        assert r["input_psnr_y"] == pytest.approx(psnr_y(rainy, clean), abs=1e-9)
        assert np.array_equal(read_image(tmp_path / "out" / f"{name}.png"), gray)
    assert result["n"] == 3
    assert result["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in result["per_image"]]))


def test_evaluate_pairs_input_only_and_perfect_prediction(tiny_pairs, tmp_path):
    result = evaluate_pairs(None, tiny_pairs.rainy, tiny_pairs.clean)
    assert set(result) >= {"n", "psnr_y", "ssim_y", "input_psnr_y", "input_ssim_y", "per_image"}
    assert result["psnr_y"] == result["input_psnr_y"]
    # clean vs clean: infinite PSNR is reported as such, and the JSON writer keeps the file strict JSON
    result = evaluate_pairs(None, tiny_pairs.clean, tiny_pairs.clean)
    assert result["psnr_y"] == math.inf and result["ssim_y"] == 1.0


def test_infinite_psnr_json_is_strict(tiny_pairs, tmp_path, capsys):
    rc, out, err = run(capsys, "--rainy", tiny_pairs.clean, "--clean", tiny_pairs.clean, "--input-only",
                       "--json", tmp_path / "r.json")
    assert rc == 0, err
    rec = strict_json(tmp_path / "r.json")
    assert rec["psnr_y"] is None and rec["ssim_y"] == 1.0
    assert "inf" in out


def test_converted_inputs_accepted_with_warning(tiny_pairs, tmp_path, capsys):
    rainy1, clean1 = tiny_pairs.images["1"]
    gray = cv2.cvtColor(rainy1, cv2.COLOR_RGB2GRAY)
    write_png(tiny_pairs.rainy / "1.png", gray)  # grayscale
    clean2 = tiny_pairs.images["2"][1]
    write_png(tiny_pairs.clean / "2.png", clean2[..., ::-1].astype(np.uint16) * 257, raw=True)  # 16-bit
    rainy10 = tiny_pairs.images["10"][0]
    bgra = np.dstack([rainy10[..., ::-1], np.full((32, 40), 128, np.uint8)])
    write_png(tiny_pairs.rainy / "10.png", bgra, raw=True)  # alpha

    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean, "--input-only",
                       "--json", tmp_path / "r.json")
    assert rc == 0, err
    warnings = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 3, err
    assert any(str(tiny_pairs.rainy / "1.png") in w and "grayscale" in w for w in warnings)
    assert any(str(tiny_pairs.clean / "2.png") in w and "16-bit" in w for w in warnings)
    assert any(str(tiny_pairs.rainy / "10.png") in w and "alpha" in w for w in warnings)
    rec = strict_json(tmp_path / "r.json")
    gray3 = np.repeat(gray[..., None], 3, axis=2)
    assert rec["per_image"][0]["psnr_y"] == pytest.approx(psnr_y(gray3, clean1), abs=1e-9)
    # 16-bit scaled back exactly (v * 257 / 257) and alpha dropped: same scores as the 8-bit originals
    assert rec["per_image"][1]["psnr_y"] == pytest.approx(psnr_y(*tiny_pairs.images["2"]), abs=1e-9)
    assert rec["per_image"][2]["psnr_y"] == pytest.approx(psnr_y(*tiny_pairs.images["10"]), abs=1e-9)


def test_library_warns_with_warning_category(tiny_pairs):
    write_png(tiny_pairs.clean / "2.png", cv2.cvtColor(tiny_pairs.images["2"][1], cv2.COLOR_RGB2GRAY))
    with pytest.warns(ImageConversionWarning, match="2.png: grayscale"):
        evaluate_pairs(None, tiny_pairs.rainy, tiny_pairs.clean)


def test_model_table_drives_choices(capsys, tiny_pairs):
    assert list_models() == ["lpnet", "anlcl"]
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean, "--model", "x")
    assert rc == 2
    assert error_line(err) == "error: unknown model 'x'; choose from: lpnet, anlcl (or give an exported artifact's path)"


# -------------------------------------------------------------------------------------------- bad inputs
def _corrupt(path):
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())


BAD_INPUTS = {
    # name: (how to break tiny_pairs, strings the error must contain)
    "missing rainy folder": (lambda p: None, ["nowhere", "not found"]),
    "empty clean folder": (lambda p: [f.unlink() for f in p.clean.iterdir()], ["clean", "no images"]),
    "missing pair": (lambda p: (p.clean / "2.png").unlink(), ["2.png", "without a clean partner"]),
    "size mismatch": (lambda p: write_png(p.clean / "10.png", make_clean(30, 20, seed=0)),
                      ["10.png", "40x32", "30x20"]),
    "corrupt file": (lambda p: _corrupt(p.rainy / "2.png"), ["2.png", "not a readable image"]),
    "empty file": (lambda p: (p.clean / "1.png").write_bytes(b""), ["1.png", "empty"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_exit_2_with_one_line_naming_the_file(case, tiny_pairs, capsys):
    breaker, needles = BAD_INPUTS[case]
    breaker(tiny_pairs)
    rainy = tiny_pairs.root / "nowhere" if case == "missing rainy folder" else tiny_pairs.rainy
    rc, out, err = run(capsys, "--rainy", rainy, "--clean", tiny_pairs.clean, "--input-only")
    assert rc == 2
    line = error_line(err)
    for needle in needles:
        assert needle in line, line
    if case in ("size mismatch", "corrupt file", "empty file"):
        broken = {"size mismatch": tiny_pairs.clean / "10.png", "corrupt file": tiny_pairs.rainy / "2.png",
                  "empty file": tiny_pairs.clean / "1.png"}[case]
        assert str(broken) in line


def test_images_smaller_than_ssim_window(tmp_path, capsys):
    for d in ("rainy", "clean"):
        write_png(tmp_path / d / "big.png", make_clean(20, 20, seed=1))
        write_png(tmp_path / d / "small.png", make_clean(12, 8, seed=1))
    rc, out, err = run(capsys, "--rainy", tmp_path / "rainy", "--clean", tmp_path / "clean", "--input-only")
    assert rc == 2
    line = error_line(err)
    assert "small.png" in line and "12x8" in line and "11x11" in line


def _foreign_safetensors(path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(path))


def _wrong_shape_lpnet(path):
    import lpnet
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in lpnet.LPNet().state_dict().items()}
    key = next(k for k in state if k.endswith("head.weight"))
    state[key] = torch.zeros(state[key].shape[0] + 1, 3, 3, 3)
    save_file(state, str(path))


BAD_WEIGHTS = {
    "missing": (lambda p: None, ["not found"]),
    "folder": (lambda p: p.mkdir(), ["not found"]),
    "corrupt": (_corrupt, ["not a readable safetensors"]),
    "empty": (lambda p: p.write_bytes(b""), []),
    "not lpnet": (_foreign_safetensors, ["does not hold LPNet weights"]),
    "wrong shape": (_wrong_shape_lpnet, ["head.weight", "shape"]),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS)
def test_bad_weights_exit_2(case, tiny_pairs, tmp_path, capsys):
    make, needles = BAD_WEIGHTS[case]
    weights = tmp_path / "w.safetensors"
    make(weights)
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean, "--weights", weights)
    assert rc == 2
    line = error_line(err)
    assert str(weights) in line
    for needle in needles:
        assert needle in line, line
    assert out == ""


def test_missing_shipped_weights(tiny_pairs, tmp_path, capsys, monkeypatch):
    import lpnet.weights

    monkeypatch.setattr(lpnet.weights, "shipped_weights_path", lambda: tmp_path / "absent.safetensors")
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean)
    assert rc == 2
    line = error_line(err)
    assert "shipped LPNet weights are missing" in line and "absent.safetensors" in line


@pytest.mark.parametrize("extra", [["--weights", "w.safetensors"], ["--model", "lpnet"], ["--save", "out"]])
def test_input_only_rejects_model_options(extra, tiny_pairs, capsys):
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean, "--input-only", *extra)
    assert rc == 2
    assert extra[0] in error_line(err)


def test_save_refuses_to_overwrite_inputs(tiny_pairs, untrained_weights, capsys):
    before = {p.name: p.read_bytes() for p in tiny_pairs.rainy.iterdir()}
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean,
                       "--weights", untrained_weights, "--save", tiny_pairs.rainy)
    assert rc == 2
    assert str(tiny_pairs.rainy) in error_line(err)
    assert {p.name: p.read_bytes() for p in tiny_pairs.rainy.iterdir()} == before


def test_json_to_a_folder_is_rejected_before_work(tiny_pairs, tmp_path, capsys):
    rc, out, err = run(capsys, "--rainy", tiny_pairs.rainy, "--clean", tiny_pairs.clean, "--input-only",
                       "--json", tmp_path)
    assert rc == 2
    assert "folder" in error_line(err)
