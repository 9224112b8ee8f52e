"""Commands that agree with their docs: install hints, help texts, pointers that resolve inside the repository."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_missing(monkeypatch, missing):
    from derain_edge import optional as F

    real_importable, real_import = F.importable, F.importlib.import_module

    def importable(name):
        return False if name in missing else real_importable(name)

    def import_module(name, *a, **k):
        if name.split(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(F, "importable", importable)
    monkeypatch.setattr(F.importlib, "import_module", import_module)


def test_tflite_without_onnx2tf_fails_at_once_with_the_one_command(monkeypatch, tmp_path, capsys):
    from export.cli import main

    _fake_missing(monkeypatch, {"onnx2tf"})
    out = tmp_path / "o"
    assert main(["--target", "tflite", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: onnx2tf is not installed")
    commands = re.findall(r"pip install [^;(]+", err)
    assert [c.strip() for c in commands] == ["pip install --no-deps onnx2tf==1.29.24"]
    assert "derain-edge[tflite]" not in err  # the extra is installed: naming it again would be a useless step
    assert not out.exists()


def test_tflite_without_the_extra_names_extra_and_onnx2tf_in_one_line(monkeypatch, tmp_path, capsys):
    from export.cli import main

    _fake_missing(monkeypatch, {"onnx2tf", "tensorflow", "ai_edge_litert"})
    assert main(["--target", "tflite", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'run: pip install "derain-edge[tflite]" && pip install --no-deps onnx2tf==1.29.24' in err
    assert "tensorflow" in err and "onnx2tf" in err and "ai_edge_litert" in err


def test_the_onnx2tf_pin_matches_the_makefile():
    from export.formats import ONNX2TF

    assert f"--no-deps {ONNX2TF}" in (ROOT / "Makefile").read_text()
    assert f"--no-deps {ONNX2TF}" in (ROOT / "docs" / "toolchain.md").read_text()


def test_pointers_to_the_toolchain_notes_resolve_inside_the_repository():
    assert (ROOT / "docs" / "toolchain.md").is_file()
    for name in ("Makefile", "constraints.txt", "pyproject.toml", "README.md"):
        text = (ROOT / name).read_text()
        assert "TOOLCHAIN.md" not in text and "../shared/TOOLCHAIN" not in text, name
    assert "docs/toolchain.md" in (ROOT / "Makefile").read_text()
    assert "docs/toolchain.md" in (ROOT / "constraints.txt").read_text()


def test_exports_folder_is_ignored():
    r = subprocess.run(["git", "check-ignore", "-q", "exports/lpnet_fp32.onnx"], cwd=ROOT)
    if r.returncode == 128:
        pytest.skip("not a git checkout")
    assert r.returncode == 0


def test_bench_help_documents_every_option():
    from runtime.bench import build_parser

    parser = build_parser()
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    text = " ".join(parser.format_help().split())
    for option, default in (("--warmup", "3"), ("--iters", "20"), ("--stream-frames", "20"), ("--rounds", "4")):
        assert re.search(re.escape(option) + r" N .*?\(default: " + default + r"\)", text), option
