"""Shared fixtures: the optional ../shared data folder, small generated rainy/clean pairs, untrained LPNet weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TINY_NAMES = ("1", "2", "10")
TINY_SIZE = (40, 32)  # width, height


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that use it skip when the folder is absent (e.g. an installed package, CI elsewhere)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared data folder not present ({data}); this test needs the project's ../shared/data")
    return data


@pytest.fixture(scope="session")
def rain100h_dev(shared_data) -> Path:
    root = shared_data / "rain100h-dev"
    if not (root / "rainy").is_dir() or not (root / "clean").is_dir():
        pytest.skip(f"{root}/rainy and {root}/clean not present in the shared data")
    return root


def make_clean(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth, structured RGB uint8 test scene (gradients, a disc, a bar), different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3))
    img[..., 0] = 40 + 150 * xx / max(width - 1, 1)
    img[..., 1] = 60 + 120 * yy / max(height - 1, 1)
    img[..., 2] = 100 + 60 * np.sin(xx / 5.0 + seed)
    cx, cy, r = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height, 0.25 * min(width, height)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img[:, int(0.8 * width):int(0.8 * width) + 2] = 20
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def add_rain(clean: np.ndarray, seed: int) -> np.ndarray:
    """Bright slanted streaks plus mild noise over `clean`."""
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


def write_png(path: Path, rgb_or_raw: np.ndarray, raw: bool = False) -> Path:
    """Writes RGB (or, with raw=True, an OpenCV-order array as it is) to a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rgb_or_raw if raw or rgb_or_raw.ndim == 2 else rgb_or_raw[..., ::-1]
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr)), path
    return path


def write_pairs(root: Path, count: int, width: int, height: int, seed: int) -> Path:
    """`count` generated pairs ``0.png …`` of width×height under root/{rainy,clean}; returns root."""
    for i in range(count):
        clean = make_clean(width, height, seed=seed + i)
        write_png(root / "clean" / f"{i}.png", clean)
        write_png(root / "rainy" / f"{i}.png", add_rain(clean, seed=seed + i))
    return root


@dataclass
class Pairs:
    root: Path
    rainy: Path
    clean: Path
    names: tuple[str, ...]
    images: dict  # name -> (rainy RGB, clean RGB)


@pytest.fixture
def tiny_pairs(tmp_path) -> Pairs:
    """Three small generated pairs ``1.png, 2.png, 10.png`` (40×32) under tmp_path/pairs/{rainy,clean}."""
    root = tmp_path / "pairs"
    images = {}
    for i, name in enumerate(TINY_NAMES):
        clean = make_clean(*TINY_SIZE, seed=i)
        rainy = add_rain(clean, seed=i)
        write_png(root / "clean" / f"{name}.png", clean)
        write_png(root / "rainy" / f"{name}.png", rainy)
        images[name] = (rainy, clean)
    return Pairs(root, root / "rainy", root / "clean", TINY_NAMES, images)


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory) -> Path:
    """Weights of an untrained LPNet (an exact identity: output == input)."""
    import lpnet

    path = tmp_path_factory.mktemp("weights") / "untrained.safetensors"
    lpnet.save_weights(lpnet.LPNet(), path)
    return path
