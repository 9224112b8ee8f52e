"""Calibration sets for INT8 / 16x8 quantization: N×3×H×W float32 RGB in [0, 1], with a summary for the sidecar.

Sources (``build_calibration``): an image folder, a video (diverse frames, ``calibration.video``), or — when the user
gives none — rain rendered over dead-leaves scenes (``calibration.build.synthetic``, from ``derain_edge.scenes.rainy_scenes``), with a
warning that frames from the
target camera calibrate better. ``calibration.store`` saves a set as NCHW / NHWC ``.npy`` plus a summary JSON.
"""
from .build import CalibrationError, CalibrationSet, build_calibration, summarize
from .store import load_calibration, save_calibration

__all__ = ["CalibrationError", "CalibrationSet", "build_calibration", "summarize", "save_calibration", "load_calibration"]
