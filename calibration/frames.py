"""What every calibration module shares: the error, the set and its summary, and frames → N×3×H×W float32.
``calibration.build`` (the entry point), ``calibration.store`` and ``calibration.video`` all import from here, so none
of them imports another in a circle."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


class CalibrationError(ValueError):
    """A calibration source that cannot be used (missing, unreadable, empty), with the reason."""


@dataclass
class CalibrationSet:
    data: np.ndarray               # N×3×H×W float32 RGB in [0, 1]
    source: str                    # "images:<dir>" | "video:<file>" | "synthetic:dead-leaves+rain"
    names: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        return summarize(self.data, self.source)


def summarize(data: np.ndarray, source: str) -> dict:
    """What the sidecar records about a calibration set: count, size, value range and per-channel mean."""
    data = np.asarray(data)
    return {
        "source": source,
        "count": int(data.shape[0]),
        "size": [int(data.shape[2]), int(data.shape[3])],
        "layout": "NCHW",
        "dtype": str(data.dtype),
        "value_range": [round(float(data.min()), 6), round(float(data.max()), 6)],
        "channel_mean": [round(float(v), 6) for v in data.mean(axis=(0, 2, 3))],
    }


def to_nchw(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 H×W×3 frames → N×3×H×W float32 [0,1], each resized (area filter) to `size` = (H, W)."""
    h, w = size
    out = np.empty((len(frames), 3, h, w), np.float32)
    for i, rgb in enumerate(frames):
        if rgb.shape[:2] != (h, w):
            interp = cv2.INTER_AREA if rgb.shape[0] >= h and rgb.shape[1] >= w else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, (w, h), interpolation=interp)
        out[i] = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return out


def to_nchw_resized(data: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    frames = [np.round(np.clip(x.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8) for x in data]
    return to_nchw(frames, size)
