"""One entry point for every calibration source, resizing every frame to one size so the set stacks into N×3×H×W."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

# the types every calibration module shares live below them all (calibration.frames); re-exported here
from .frames import CalibrationError, CalibrationSet, summarize, to_nchw, to_nchw_resized  # noqa: F401

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_SIZE = (240, 320)  # H, W: calibration statistics of a fully convolutional net do not need full frames
DEFAULT_COUNT = 32


class SyntheticCalibrationWarning(UserWarning):
    """No calibration data was given; the synthetic default was used."""


def _check(count: int, size) -> tuple[int, tuple[int, int]]:
    if int(count) < 1:
        raise CalibrationError(f"calibration count must be ≥ 1, got {count}")
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise CalibrationError(f"calibration size must be at least 8x8, got {h}x{w}")
    return int(count), (h, w)


def from_images(folder: str | Path, count: int, size: tuple[int, int]) -> CalibrationSet:
    """Up to `count` images of a folder, evenly spaced over its sorted listing."""
    from derain_edge.imageio import ImageError, list_images, read_image

    try:
        files = list_images(folder)
    except ImageError as e:
        raise CalibrationError(f"calibration folder {e}") from e
    pick = files if len(files) <= count else [files[int(i)] for i in np.linspace(0, len(files) - 1, count)]
    frames = []
    for path in pick:
        try:
            frames.append(read_image(path))
        except ImageError as e:
            raise CalibrationError(f"calibration image {e}") from e
    return CalibrationSet(to_nchw(frames, size), f"images:{folder}", [p.name for p in pick])


def synthetic(count: int, size: tuple[int, int], seed: int = 0) -> CalibrationSet:
    """Rain (derain_edge.rain) over dead-leaves scenes (derain_edge.scenes): natural statistics without any data."""
    from derain_edge.scenes import rainy_scenes

    frames = [rainy for rainy, _ in rainy_scenes(count, size, seed)]
    return CalibrationSet(to_nchw(frames, size), "synthetic:dead-leaves+rain", [f"synthetic-{i}" for i in range(count)])


def build_calibration(source: str | Path | None = None, count: int = DEFAULT_COUNT,
                      size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, warn: bool = True) -> CalibrationSet:
    """Calibration set from a folder of images, a video file, a saved ``.npy`` set, or the synthetic default (None)."""
    count, size = _check(count, size)
    if source is None:
        if warn:
            warnings.warn("no --calib given: calibrating on synthetic rain over dead-leaves scenes; real frames from "
                          "the target camera (a folder or a video) calibrate better", SyntheticCalibrationWarning,
                          stacklevel=2)
        return synthetic(count, size, seed)
    path = Path(source)
    if not path.exists():
        raise CalibrationError(f"calibration source not found: {path}")
    if path.is_dir():
        return from_images(path, count, size)
    if path.suffix.lower() == ".npy":
        from .store import load_calibration

        data = load_calibration(path)
        return CalibrationSet(to_nchw_resized(data, size) if data.shape[2:] != size else data, f"npy:{path}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        from .video import from_video

        return from_video(path, count, size)
    raise CalibrationError(f"calibration source {path} is neither a folder of images, a video "
                           f"({', '.join(VIDEO_SUFFIXES)}) nor a saved .npy set")
