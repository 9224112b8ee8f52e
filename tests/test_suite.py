"""derain-eval --suite: heavy, light and dry frames in one table; dry frames scored against their own input."""
import json
import os

import numpy as np
import pytest

from conftest import add_rain, make_clean, write_png
from derain_edge.commands.evaluate import main
from derain_edge.suite import DRY_CAP, SCENES, Suite, evaluate_suite


def _pairs(root, n=2, seed=0):
    for i in range(n):
        clean = make_clean(48, 40, seed=seed + i)
        write_png(root / "clean" / f"{i}.png", clean)
        write_png(root / "rainy" / f"{i}.png", add_rain(clean, seed=seed + i))
    return root


def _photos(root, n=3):
    for i in range(n):
        write_png(root / f"p{i}.png", make_clean(48, 40, seed=50 + i))
    return root


@pytest.fixture
def suite(tmp_path):
    return Suite([_pairs(tmp_path / "heavy")], [_pairs(tmp_path / "light", seed=9)], [_photos(tmp_path / "dry"), SCENES])


def test_dry_frames_are_scored_against_their_own_input(suite):
    identity = evaluate_suite(lambda rgb: rgb.copy(), suite)
    darker = evaluate_suite(lambda rgb: (rgb * 0.9).astype(np.uint8), suite)
    dry = [r for r in identity["sets"] if r["condition"] == "dry"]
    assert [r["set"] for r in dry] == ["dry", SCENES] and dry[1]["n"] == 8
    # left alone: perfect (capped mean, exact per image); a model that darkens dry frames loses there
    assert all(r["psnr_y"] == DRY_CAP and r["ssim_y"] == pytest.approx(1.0) for r in dry)
    assert all(row["psnr_y"] == float("inf") for row in dry[0]["per_image"])
    assert all(r["psnr_y"] < 30 for r in darker["sets"] if r["condition"] == "dry")
    # rainy sets: the identity scores exactly what the rainy input scores
    rainy = [r for r in identity["sets"] if r["condition"] != "dry"]
    assert [r["condition"] for r in rainy] == ["heavy", "light"]
    assert all(r["psnr_y"] == pytest.approx(r["input_psnr_y"]) for r in rainy)


def test_suite_cli_prints_one_table_and_writes_json(suite, tmp_path, capsys, untrained_weights):
    js = tmp_path / "out" / "suite.json"
    argv = ["--suite", "--heavy", str(suite.heavy[0]), "--light", str(suite.light[0]), "--dry", str(suite.dry[0]),
            "--dry", "scenes", "--weights", str(untrained_weights), "--json", str(js)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "heavy" in out and "light" in out and "(= input)" in out and "change dB" in out
    rec = json.loads(js.read_text())
    assert [s["condition"] for s in rec["sets"]] == ["heavy", "light", "dry", "dry"]
    assert rec["sets"][2]["psnr_y"] == DRY_CAP  # the untrained LPNet is an exact identity
    assert rec["sets"][2]["per_image"][0]["psnr_y"] is None  # inf → null in strict JSON


def test_suite_scores_an_exported_artifact(suite, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import lpnet
    from export.onnx_export import torch_to_onnx

    onnx_path = torch_to_onnx(lpnet.load_pretrained().eval(), tmp_path / "m.onnx")
    js = tmp_path / "a.json"
    assert main(["--suite", "--model", str(onnx_path), "--heavy", str(suite.heavy[0]), "--dry", str(suite.dry[0]), "--json", str(js)]) == 0
    torch_js = tmp_path / "t.json"
    assert main(["--suite", "--heavy", str(suite.heavy[0]), "--dry", str(suite.dry[0]), "--json", str(torch_js)]) == 0
    a, t = (json.loads(p.read_text())["sets"] for p in (js, torch_js))
    for x, y in zip(a, t):  # the artifact through the runtime scores what the PyTorch model scores
        assert x["psnr_y"] == pytest.approx(y["psnr_y"], abs=0.05)


def test_skip_bad_reports_the_skipped_file_and_scores_the_rest(suite, capsys):
    (suite.dry[0] / "broken.png").write_bytes(b"not a png")
    assert main(["--suite", "--dry", str(suite.dry[0])]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["--suite", "--dry", str(suite.dry[0]), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 bad file" in captured.err and "broken.png" in captured.err
    assert " 3 " in captured.out  # the three good photos were scored


def test_skip_bad_on_pairs(tiny_pairs, capsys):
    (tiny_pairs.rainy / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["--rainy", str(tiny_pairs.rainy), "--clean", str(tiny_pairs.clean), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "over 2 images" in captured.out and "1.png" in captured.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_json_fails_before_any_scoring(tiny_pairs, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["--rainy", str(tiny_pairs.rainy), "--clean", str(tiny_pairs.clean), "--json", str(ro / "x.json")]) == 2
    assert "not a writable folder" in capsys.readouterr().err


def test_json_destination_is_checked_before_scoring(tiny_pairs, tmp_path, capsys, monkeypatch):
    """Also as root: a --json whose parent is a file fails at once, before the model is even loaded."""
    import derain_edge.commands.evaluate as ev

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(ev, "load_model", lambda *a, **k: pytest.fail("loaded the model before checking --json"))
    assert main(["--rainy", str(tiny_pairs.rainy), "--clean", str(tiny_pairs.clean), "--json", str(blocker / "x.json")]) == 2
    assert "not a writable folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [(["--suite", "--rainy", "x"], "drop --rainy"),
                                       (["--heavy", "x"], "go with --suite"),
                                       (["--suite", "--dry", "/no/such"], "not a folder"),
                                       (["--suite", "--model", "nope", "--dry", "scenes"], "unknown model 'nope'"),
                                       ([], "give --rainy DIR and --clean DIR")])
def test_suite_argument_errors(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_demo_scenes_cover_heavy_light_and_dry(tmp_path):
    import lpnet
    from derain_edge.commands.demo import synthetic_demo

    scores = synthetic_demo(lpnet.LPNet().eval(), tmp_path, scenes=3)  # untrained LPNet: an exact identity
    assert [c for c, _, _ in scores] == ["heavy", "light", "dry"]
    heavy, light, dry = scores
    assert heavy[1] < light[1] and dry[2] == float("inf")  # heavy rain is heavier; a dry frame left alone
    assert (tmp_path / "demo_side_by_side.png").is_file()
