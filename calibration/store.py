"""Saving calibration sets the way each backend wants them: NCHW .npy (ORT, TensorRT tools), NHWC .npy (onnx2tf's
``-cind``, TFLite representative datasets), each with a ``.json`` summary beside it."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from derain_edge.files import atomic_write_bytes, atomic_write_text

from .frames import CalibrationError, summarize

LAYOUTS = ("NCHW", "NHWC")


def save_calibration(data: np.ndarray, path: str | Path, layout: str = "NCHW", source: str = "") -> Path:
    """Writes `data` (N×3×H×W float32) as `path` in `layout`, plus ``<path>.json`` with the summary; returns path."""
    if layout not in LAYOUTS:
        raise CalibrationError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 4 or data.shape[1] != 3:
        raise CalibrationError(f"expected N×3×H×W calibration data, got shape {data.shape}")
    path = Path(path)
    arr = data if layout == "NCHW" else data.transpose(0, 2, 3, 1)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    summary = {**summarize(data, source), "layout": layout, "shape": list(arr.shape)}
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(summary, indent=2) + "\n")
    return path


def load_calibration(path: str | Path) -> np.ndarray:
    """Reads a saved set back as N×3×H×W float32 (NHWC files are recognised by their 3-channel last axis)."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CalibrationError(f"calibration file {path}: not a readable .npy array ({e})") from e
    if arr.ndim != 4 or 3 not in (arr.shape[1], arr.shape[3]):
        raise CalibrationError(f"calibration file {path}: expected N×3×H×W or N×H×W×3, got shape {arr.shape}")
    if arr.shape[1] != 3:
        arr = arr.transpose(0, 3, 1, 2)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all() or arr.min() < -1e-3 or arr.max() > 1.001:
        raise CalibrationError(f"calibration file {path}: values must be finite RGB in [0, 1] "
                               f"(got {arr.min():.3g}…{arr.max():.3g}; scaled 0–255?)")
    return arr
