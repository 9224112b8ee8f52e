"""A read-only output path is a one-line error, not a PermissionError traceback (checked before long work)."""
from __future__ import annotations

import pytest

from derain_edge import outputs


def test_check_writable_refuses_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "access", lambda p, mode: False)  # root ignores chmod: simulate it
    with pytest.raises(PermissionError):
        outputs.check_writable(tmp_path / "sub" / "r.json")


def test_bench_json_unwritable_fails_at_once(tmp_path, monkeypatch, capsys):
    from runtime import bench

    monkeypatch.setattr(outputs.os, "access", lambda p, mode: False)
    monkeypatch.setattr(bench, "run_bench", lambda args: pytest.fail("benchmarked before checking --json"))
    assert bench.main(["--json", str(tmp_path / "ro" / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_demo_read_only_out_is_one_line(tmp_path, monkeypatch, capsys):
    from derain_edge.commands import demo

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(demo, "synthetic_demo", denied)
    assert demo.main(["--out", str(tmp_path / "ro")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Permission denied" in err and len(err.strip().splitlines()) == 1
