"""Which images share a background: the guard that keeps test scores honest.

Rain100H and Rain100L render rain over the same photos, and Rain100H itself holds a few backgrounds twice (its
pairs 6/25, 7/36, 9/58 and 10/69 differ only in the rain). A split by file name therefore leaks: a model trained on
one pair has seen the background of another. Backgrounds are compared by content — a 48×32 grey thumbnail in the
image's own orientation, mean absolute difference below a threshold — so sizes off by a pixel (480×320 vs
481×321), re-encoding and a different file name still match, while different photos differ by 20+ grey levels.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .imageio import list_images, read_image

THUMB = (48, 32)          # landscape thumbnail (w, h); portrait images use (32, 48)
SAME_BACKGROUND = 6.0     # mean absolute grey difference (0–255) below which two images share a background


class BackgroundOverlapError(ValueError):
    """A test image shares its background with a training image."""


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    size = THUMB if grey.shape[1] >= grey.shape[0] else THUMB[::-1]
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def thumbnails(folder: str | Path) -> dict[Path, np.ndarray]:
    return {p: thumbnail(read_image(p)) for p in list_images(folder)}


def same_background(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) < SAME_BACKGROUND


def overlaps(train: dict[Path, np.ndarray], test: dict[Path, np.ndarray]) -> list[tuple[Path, Path]]:
    """Every (test image, training image) pair that shares a background."""
    return [(p, q) for p, a in test.items() for q, b in train.items() if same_background(a, b)]


def check_disjoint(train_folders, test_folders) -> None:
    """Raises BackgroundOverlapError naming the pairs when any test image's background is in a training folder."""
    train = {p: t for f in train_folders for p, t in thumbnails(f).items()}
    test = {p: t for f in test_folders for p, t in thumbnails(f).items()}
    found = overlaps(train, test)
    if found:
        listed = "; ".join(f"{a} ~ {b}" for a, b in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise BackgroundOverlapError(f"{len(found)} test image(s) share a background with training images: {listed}")
