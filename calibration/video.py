"""Calibration frames from a video, chosen to be diverse: consecutive frames are nearly identical and would
over-weight whatever the camera saw longest, so we pick by farthest-point sampling on colour-histogram features."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .frames import CalibrationError, CalibrationSet, to_nchw

MAX_CANDIDATES = 400  # frames decoded and compared (evenly spaced over the video)


def frame_feature(rgb: np.ndarray) -> np.ndarray:
    """A 3×16-bin per-channel histogram plus an 8×8 luma thumbnail, L2-normalised: cheap, captures scene + exposure."""
    hist = [cv2.calcHist([rgb], [c], None, [16], [0, 256]).ravel() for c in range(3)]
    hist = np.concatenate(hist)
    hist /= hist.sum() + 1e-9
    thumb = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (8, 8), interpolation=cv2.INTER_AREA).ravel() / 255.0
    feat = np.concatenate([hist * 4.0, thumb / 8.0]).astype(np.float64)
    return feat / (np.linalg.norm(feat) + 1e-12)


def diverse_indices(features: np.ndarray, count: int) -> list[int]:
    """Greedy farthest-point sampling: start at the frame farthest from the mean, then repeatedly add the frame whose
    nearest chosen frame is farthest away. Returns sorted indices (at most `count`)."""
    n = len(features)
    if n <= count:
        return list(range(n))
    first = int(np.argmax(np.linalg.norm(features - features.mean(0), axis=1)))
    chosen = [first]
    dist = np.linalg.norm(features - features[first], axis=1)
    while len(chosen) < count:
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:
            break  # all remaining frames duplicate a chosen one
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(features - features[nxt], axis=1))
    return sorted(chosen)


def read_candidates(path: Path, max_candidates: int = MAX_CANDIDATES) -> tuple[list[np.ndarray], list[int]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CalibrationError(f"calibration video {path}: cannot be opened (corrupt or unsupported codec)")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        step = max(1, total // max_candidates) if total > 0 else 1
        frames, numbers, i = [], [], 0
        while len(frames) < max_candidates:
            ok = cap.grab()
            if not ok:
                break
            if i % step == 0:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
                    numbers.append(i)
            i += 1
    finally:
        cap.release()
    if not frames:
        raise CalibrationError(f"calibration video {path}: no decodable frames")
    return frames, numbers


def from_video(path: str | Path, count: int, size: tuple[int, int]) -> CalibrationSet:
    path = Path(path)
    frames, numbers = read_candidates(path)
    feats = np.stack([frame_feature(f) for f in frames])
    pick = diverse_indices(feats, count)
    return CalibrationSet(to_nchw([frames[i] for i in pick], size), f"video:{path}",
                          [f"frame-{numbers[i]}" for i in pick])
