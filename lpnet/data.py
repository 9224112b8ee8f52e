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
from derain_edge.progress import progress

from derain_edge.imageio import ImageError, list_images, read_image, read_pairs

log = logging.getLogger(__name__)

# Clean photos are scaled so their long side is at most this, matching the 480×320 frames the rain geometry and
# Rain100H assume.
CLEAN_MAX_SIDE = 512
_RENDER_MARGIN = 24  # rain is rendered on a larger window so streaks enter the crop from outside


def load_pairs(folder: str | Path, min_side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """All pairs of FOLDER/rainy and FOLDER/clean (matched by name) as RGB uint8 arrays."""
    folder = Path(folder)
    pairs = []
    for name, rainy, clean in read_pairs(folder, progress_desc=f"pairs {folder.name}"):
        if min(rainy.shape[:2]) < min_side:
            log.warning("skipping %s: smaller than the %d px training crop", folder / "rainy" / name, min_side)
            continue
        pairs.append((rainy, clean))
    return pairs


def load_clean(folder: str | Path, min_side: int) -> list[np.ndarray]:
    """Clean photos of a folder, downscaled to ≤ CLEAN_MAX_SIDE; unreadable files are skipped with a warning."""
    images = []
    for path in progress(list_images(folder), desc=f"clean {Path(folder).name}", leave=False):
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
    """Each crop of a batch is, by the shares below: a real pair; rain of a random preset rendered over a clean
    photo; or a dry pair (clean → clean) from a clean photo or the clean half of a real pair, which teaches the
    model to leave a frame without rain alone. The real share is what the two others leave."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    clean: list[np.ndarray]
    patch: int = 80
    batch_size: int = 10
    seed: int = 0
    synthetic_fraction: float = 0.5  # share of rendered-rain crops
    dry_fraction: float = 0.0        # share of dry (clean → clean) crops
    presets: tuple[str, ...] = ("heavy",)

    def __post_init__(self):
        if not self.pairs and not self.clean:
            raise ValueError("no training data: give --pairs and/or --clean folders with images")
        if not (0 <= self.synthetic_fraction <= 1 and 0 <= self.dry_fraction <= 1 and self.synthetic_fraction + self.dry_fraction <= 1):
            raise ValueError(f"--synthetic-fraction {self.synthetic_fraction} and --dry-fraction {self.dry_fraction} must be "
                             "in [0, 1] and add up to at most 1 (the real-pair share is the rest)")
        if not self.pairs:
            self.synthetic_fraction = 1.0 - self.dry_fraction
        elif not self.clean:
            self.synthetic_fraction = 0.0
        from derain_edge.rain import RainConfig

        self._rain_configs = [RainConfig.preset(name) for name in self.presets]
        self._dry_sources = self.clean + [c for _, c in self.pairs]

    @property
    def mix(self) -> dict[str, float]:
        """The shares actually drawn (after missing sources are accounted for), for the log and the history."""
        return {"real": round(1.0 - self.synthetic_fraction - self.dry_fraction, 4), "rendered": self.synthetic_fraction,
                "dry": self.dry_fraction, "presets": list(self.presets)}

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        rainy, clean = zip(*(self._sample(rng) for _ in range(self.batch_size)))
        return _to_tensor(rainy), _to_tensor(clean)

    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        u = rng.random()
        if u < self.dry_fraction:
            clean = _crop(self._dry_sources[rng.integers(len(self._dry_sources))], self.patch, rng)
            rainy = clean
        elif u < self.dry_fraction + self.synthetic_fraction:
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
        window = _crop(img, self.patch + 2 * _RENDER_MARGIN, rng)
        config = self._rain_configs[rng.integers(len(self._rain_configs))] if len(self._rain_configs) > 1 else self._rain_configs[0]
        rainy = render_rain(window, rng, config)
        rainy = np.round(rainy * 255.0) / 255.0  # real rainy inputs arrive as 8-bit images
        m = slice(_RENDER_MARGIN, _RENDER_MARGIN + self.patch)
        return rainy[m, m].astype(np.float32), window[m, m]


def _crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = rng.integers(img.shape[0] - size + 1), rng.integers(img.shape[1] - size + 1)
    return img[y : y + size, x : x + size].astype(np.float32) / 255.0


def _to_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
