"""Training crops for ANLCL-lite, each a pure function of (seed, step, sample index) so that a resumed run and every
process of a data-parallel run see exactly the crops of the uninterrupted single-process run.

Stage 1 (initialisation): synthetic pairs, rain rendered by derain_edge.rain over clean photos.
Stage 2 (unsupervised): crops of real rainy images (no ground truth) plus unpaired clean crops, the "real" domain of
the adversarial loss on B.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from derain_edge.rain import RainConfig, render_rain

log = logging.getLogger(__name__)

RENDER_MARGIN = 24  # rain is rendered on a larger window so streaks enter the crop from outside
OVERLAPPING_RAIN100H = ("cbsd68",)  # Rain100H's backgrounds come from BSD: training on them makes rain100h unfair


def load_folders(folders: list[str], min_side: int, what: str) -> list[np.ndarray]:
    """Images of the folders (long side scaled to ≤ 512 as Rain100H's frames), at least `min_side` px."""
    from lpnet.data import load_clean

    images = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{what} folder not found: {folder}")
        if any(name in Path(folder).name.lower() for name in OVERLAPPING_RAIN100H):
            log.warning("%s overlaps Rain100H's backgrounds: rain100h scores after training on it are not fair", folder)
        found = load_clean(folder, min_side)
        if not found:
            raise ValueError(f"no usable {what} images in {folder} (need images of at least {min_side + 2 * RENDER_MARGIN} px)")
        images += found
    return images


def _crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = rng.integers(img.shape[0] - size + 1), rng.integers(img.shape[1] - size + 1)
    crop = img[y : y + size, x : x + size].astype(np.float32) / 255.0
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _to_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))


class Crops:
    """`synthetic(step, indices)` → (rainy, clean) rendered pairs; `unpaired(step, indices)` → (rainy, clean)
    independent crops. `indices` are positions in the global batch (a process's share in data-parallel runs)."""

    def __init__(self, rainy: list[np.ndarray], clean: list[np.ndarray], patch: int, seed: int,
                 presets: tuple[str, ...] | None = None, dry_fraction: float = 0.0):
        if not clean:
            raise ValueError("no clean images: give --clean folders (for rendered pairs and the adversarial loss)")
        self.rainy, self.clean, self.patch, self.seed = rainy, clean, patch, seed
        self.rain_config = RainConfig.heavy()
        # presets / dry_fraction: stage 1 draws from LPNet's data engine (lpnet.data.PatchSampler: rain of a random
        # RainConfig preset, or a dry clean → clean pair with probability dry_fraction); None keeps heavy rain only
        self.engine = None
        if presets is not None or dry_fraction > 0:
            from lpnet.data import PatchSampler

            self.engine = PatchSampler([], clean, patch=patch, batch_size=1, seed=seed,
                                       synthetic_fraction=1.0 - dry_fraction, dry_fraction=dry_fraction,
                                       presets=tuple(presets or ("heavy",)))

    def _rng(self, stage: int, step: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stage, step, i])

    def synthetic(self, step: int, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rainy, clean = [], []
        for i in indices:
            rng = self._rng(1, step, i)
            if self.engine is not None:
                wet, dry = self.engine._sample(rng)
                rainy.append(wet)
                clean.append(dry)
                continue
            img = self.clean[rng.integers(len(self.clean))]
            window = _crop(img, self.patch + 2 * RENDER_MARGIN, rng)
            wet = np.round(render_rain(window, rng, self.rain_config) * 255.0) / 255.0  # 8-bit like real inputs
            m = slice(RENDER_MARGIN, RENDER_MARGIN + self.patch)
            rainy.append(wet[m, m].astype(np.float32))
            clean.append(window[m, m])
        return _to_tensor(rainy), _to_tensor(clean)

    def unpaired(self, step: int, indices) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.rainy:
            raise ValueError("no rainy images: give --rainy folders for the unsupervised stage")
        rainy, clean = [], []
        for i in indices:
            rng = self._rng(2, step, i)
            rainy.append(_crop(self.rainy[rng.integers(len(self.rainy))], self.patch, rng))
            clean.append(_crop(self.clean[rng.integers(len(self.clean))], self.patch, rng))
        return _to_tensor(rainy), _to_tensor(clean)
