"""Every target checks its job the same way (``ExportJob.check`` against its row of the formats table), before any
work: a precision the row does not allow, a missing or malformed calibration set, an empty size list for a
fixed-size target. Parametrized over the whole formats table, so a new target is checked without a new test."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export import formats as F
from export.job import ExportJob

ROWS = [*F.FORMATS, *F.SERVER_FORMATS]


def _function(fmt):
    try:
        return F.load_function(fmt)
    except (F.MissingDependency, RuntimeError) as e:  # noqa: PERF203
        pytest.skip(f"{fmt.name} backends missing here: {str(e).splitlines()[0]}")


def _refused(fmt, tmp_path, match, **job):
    model = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match=match):
        _function(fmt)(model, ExportJob(out_dir=tmp_path / "out", stem="m", **job))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*")), "wrote before refusing"


@pytest.mark.parametrize("fmt", ROWS, ids=lambda f: f.name)
def test_precision_not_in_the_row_is_refused(fmt, tmp_path):
    _refused(fmt, tmp_path, rf"{fmt.name} precision must be one of {', '.join(fmt.precisions)}", precision="int4")


@pytest.mark.parametrize("fmt", ROWS, ids=lambda f: f.name)
def test_calibrated_precisions_need_a_good_calibration_set(fmt, tmp_path):
    if not fmt.calibrated:
        pytest.skip(f"{fmt.name} calibrates nothing (its int8 is weights-only)")
    precision = fmt.calibrated[-1]
    _refused(fmt, tmp_path, rf"{fmt.name} {precision} needs calibration images", precision=precision,
             sizes=[(32, 32)])
    _refused(fmt, tmp_path, r"in \[0, 1\]", precision=precision, sizes=[(32, 32)],
             calib=np.full((2, 3, 8, 8), 255.0, np.float32))
    _refused(fmt, tmp_path, "N×3×H×W", precision=precision, sizes=[(32, 32)], calib=np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("fmt", ROWS, ids=lambda f: f.name)
def test_sizes(fmt, tmp_path):
    _refused(fmt, tmp_path, "positive", precision=fmt.precisions[0], sizes=[(64, 0)])
    if not fmt.dynamic:
        _refused(fmt, tmp_path, "at least one fixed size", precision=fmt.precisions[0], sizes=[])


def test_check_normalizes():
    row = F.BY_NAME["tflite"]
    job = ExportJob(out_dir="o", stem="m", precision="int8", calib=np.zeros((1, 3, 4, 4), np.float64))
    assert job.check(row) is job
    assert job.sizes == [tuple(s) for s in F.DEFAULT_SIZES]  # a fixed-size target gets the camera defaults
    assert job.calib.dtype == np.float32
    job = ExportJob(out_dir="o", stem="m", precision="fp32", sizes=[(48, 64), [48, 64], (32, 32)])
    assert job.check(F.BY_NAME["onnx"]).sizes == [(48, 64), (32, 32)]
    assert ExportJob(out_dir="o", stem="m", precision="fp32").check(F.BY_NAME["onnx"]).sizes is None  # dynamic


def test_int8_recovery_aims_lower_when_the_probe_pairs_under_read_the_drop(tmp_path, monkeypatch):
    """The sensitivity search probes 8 pairs; when they see 0.15 dB of the whole set's 0.36 dB, a search that met
    0.3 dB on them would still miss on the set: it must aim at 0.3 × 0.15 / 0.36 = 0.125 dB, and calibrate its probes
    on the whole calibration set (as the artifact was)."""
    from export import artifact, exporter, onnx_export, sensitivity
    from export import cost as C
    from export.artifact import Exported
    from export.cost import Pair

    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(b"graph")
    monkeypatch.setattr(onnx_export, "fp32_onnx", lambda model, opset, workspace: fp32)
    monkeypatch.setattr(artifact, "artifact_runner", lambda path, fmt, contract: None)
    monkeypatch.setattr(C, "measure", lambda runner, reference, pairs, sizes, source: {"psnr_y_drop_db": 0.15})
    seen = {}

    def fake_search(path, calib, drop_of, limit, **kw):
        seen.update(limit=limit, frames=len(calib), probe=drop_of(path))
        return {"limit_db": limit, "baseline_drop_db": 0.15, "rounds": [], "excluded": [], "nodes_to_exclude": [],
                "drop_db": 0.15, "met": True}

    monkeypatch.setattr(sensitivity, "find_exclusions", fake_search)
    rgb = np.zeros((8, 8, 3), np.uint8)
    job = ExportJob(out_dir=tmp_path, stem="m", precision="int8", calib=np.zeros((32, 3, 8, 8), np.float32),
                    val=[Pair(str(i), rgb, rgb) for i in range(50)])
    exp = Exported(path=tmp_path / "m_int8.onnx", target="onnx", format="onnx", precision="int8", inputs=[],
                   outputs=[], sizes="dynamic")
    redone, sens = exporter._recover_int8(exp, None, job, None, None, lambda line: None, full_drop=0.36)
    assert redone is None  # nothing excluded: nothing re-exported
    assert seen["limit"] == pytest.approx(0.3 * 0.15 / 0.36, abs=1e-4) and seen["frames"] == 32
    assert (tmp_path / "m_onnx_int8.sensitivity.json").is_file()


def test_default_validation_pairs_cover_heavy_light_and_dry():
    """Without --val the exporter judges every artifact on the project's three conditions, not on heavy rain alone:
    a dry pair is the clean scene twice, light rain changes fewer pixels than heavy rain."""
    from export import cost as C

    pairs = C.synthetic_pairs(4)
    assert [p.name for p in pairs] == ["synthetic-0-heavy", "synthetic-1-light", "synthetic-2-dry",
                                       "synthetic-3-moderate"]
    heavy, light, dry, _ = (np.abs(p.rainy.astype(int) - p.clean).mean() for p in pairs)
    assert dry == 0 and 0 < light < heavy
    assert np.array_equal(C.synthetic_pairs(1)[0].rainy, pairs[0].rainy)  # parity's image stays heavy rain
