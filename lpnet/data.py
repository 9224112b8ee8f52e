"""Training batches for LPNet: random crops from real rainy/clean pairs and rain rendered on the fly over clean photos.

Every batch is a pure function of (seed, step): a run that is killed and resumed sees exactly the batches it would
have seen, and two runs with the same seed are identical.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from derain_edge.imageio import ImageError, list_images, list_pairs, read_image

log = logging.getLogger(__name__)

# Clean photos are scaled so their long side is at most this, matching the 480×320 frames the rain geometry and
# Rain100H assume.
CLEAN_MAX_SIDE = 512
_RENDER_MARGIN = 24  # rain is rendered on a larger window so streaks enter the crop from outside


def load_pairs(folder: str | Path, min_side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """All pairs of FOLDER/rainy and FOLDER/clean (matched by name) as RGB uint8 arrays."""
    folder = Path(folder)
    pairs = []
    for rainy_path, clean_path in tqdm(list_pairs(folder / "rainy", folder / "clean"), desc=f"pairs {folder.name}", leave=False):
        rainy, clean = read_image(rainy_path), read_image(clean_path)
        if rainy.shape != clean.shape:
            raise ImageError(f"{rainy_path} is {rainy.shape[1]}×{rainy.shape[0]} but {clean_path} is {clean.shape[1]}×{clean.shape[0]}")
        if min(rainy.shape[:2]) < min_side:
            log.warning("skipping %s: smaller than the %d px training crop", rainy_path, min_side)
            continue
        pairs.append((rainy, clean))
    return pairs


def load_clean(folder: str | Path, min_side: int) -> list[np.ndarray]:
    """Clean photos of a folder, downscaled to ≤ CLEAN_MAX_SIDE; unreadable files are skipped with a warning."""
    images = []
    for path in tqdm(list_images(folder), desc=f"clean {Path(folder).name}", leave=False):
        try:
            img = read_image(path)
        except ImageError as e:
            log.warning("skipping %s", e)
            continue
        scale = CLEAN_MAX_SIDE / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(img.shape[:2]) >= min_side + 2 * _RENDER_MARGIN:
            images.append(img)
    return images


@dataclass
class PatchSampler:
    pairs: list[tuple[np.ndarray, np.ndarray]]
    clean: list[np.ndarray]
    patch: int = 80
    batch_size: int = 10
    seed: int = 0
    synthetic_fraction: float = 0.5  # share of synthetic crops when both sources exist

    def __post_init__(self):
        if not self.pairs and not self.clean:
            raise ValueError("no training data: give --pairs and/or --clean folders with images")
        if not self.pairs:
            self.synthetic_fraction = 1.0
        elif not self.clean:
            self.synthetic_fraction = 0.0
        self._rain_config = None
        if self.clean:
            from derain_edge.rain import RainConfig

            self._rain_config = RainConfig.heavy()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        rainy, clean = zip(*(self._sample(rng) for _ in range(self.batch_size)))
        return _to_tensor(rainy), _to_tensor(clean)

    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < self.synthetic_fraction:
            rainy, clean = self._synthetic(rng)
        else:
            r, c = self.pairs[rng.integers(len(self.pairs))]
            y, x = rng.integers(r.shape[0] - self.patch + 1), rng.integers(r.shape[1] - self.patch + 1)
            rainy = r[y : y + self.patch, x : x + self.patch].astype(np.float32) / 255.0
            clean = c[y : y + self.patch, x : x + self.patch].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            rainy, clean = rainy[:, ::-1], clean[:, ::-1]
        return rainy, clean

    def _synthetic(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from derain_edge.rain import render_rain

        img = self.clean[rng.integers(len(self.clean))]
        size = self.patch + 2 * _RENDER_MARGIN
        y, x = rng.integers(img.shape[0] - size + 1), rng.integers(img.shape[1] - size + 1)
        window = img[y : y + size, x : x + size].astype(np.float32) / 255.0
        rainy = render_rain(window, rng, self._rain_config)
        rainy = np.round(rainy * 255.0) / 255.0  # real rainy inputs arrive as 8-bit images
        m = slice(_RENDER_MARGIN, _RENDER_MARGIN + self.patch)
        return rainy[m, m].astype(np.float32), window[m, m]


def _to_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
