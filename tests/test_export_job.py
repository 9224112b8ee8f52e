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
