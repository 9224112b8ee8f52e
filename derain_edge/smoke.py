"""Helpers for the `--smoke` mode of the files in benchmarks/, scripts/ and examples/: a scratch folder that is removed
at exit, and tiny generated rainy/clean pairs, so every script can run end to end in seconds without ../shared data
(tests/test_smoke_scripts.py runs each of them this way)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .imageio import write_image


def scratch_dir(prefix: str = "derain-smoke-") -> Path:
    """A fresh temporary folder, deleted when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def tiny_scene(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth RGB uint8 scene (gradients and a disc), different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3))
    img[..., 0] = 40 + 150 * xx / max(width - 1, 1)
    img[..., 1] = 60 + 120 * yy / max(height - 1, 1)
    img[..., 2] = 100 + 60 * np.sin(xx / 5.0 + seed)
    cx, cy, r = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height, 0.25 * min(width, height)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def add_streaks(clean: np.ndarray, seed: int) -> np.ndarray:
    """`clean` with bright slanted streaks and mild noise."""
    rng = np.random.default_rng(1000 + seed)
    h, w = clean.shape[:2]
    streaks = np.zeros((h, w))
    for _ in range(max(4, w // 4)):
        x, y, length = rng.integers(0, w), rng.integers(0, h), rng.integers(4, 12)
        for t in range(length):
            xi, yi = x + t // 3, y + t
            if 0 <= xi < w and 0 <= yi < h:
                streaks[yi, xi] = 90
    noise = rng.normal(0, 4, clean.shape)
    return np.clip(clean + streaks[..., None] + noise, 0, 255).round().astype(np.uint8)


def tiny_pairs(root: str | Path, names=("1", "2"), size: tuple[int, int] = (64, 48)) -> Path:
    """Writes `root/rainy/<name>.png` and `root/clean/<name>.png` (size = width, height); returns `root`."""
    root = Path(root)
    for i, name in enumerate(names):
        clean = tiny_scene(*size, seed=i)
        write_image(root / "clean" / f"{name}.png", clean)
        write_image(root / "rainy" / f"{name}.png", add_streaks(clean, seed=i))
    return root
