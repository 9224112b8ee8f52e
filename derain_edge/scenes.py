"""Procedural scenes with natural-image statistics, so demos and calibration work without any downloaded data.

Dead leaves (Matheron; Lee, Mumford & Huang 2001): occluding disks with power-law radii reproduce the 1/f spectrum
and the edge statistics of photographs, which is what a deraining network's filters respond to.
"""
from __future__ import annotations

import cv2
import numpy as np


def dead_leaves(height: int, width: int, rng: np.random.Generator, n_leaves: int | None = None) -> np.ndarray:
    """An H×W×3 RGB uint8 dead-leaves image: sky-like gradient, power-law disks and rectangles, mild texture."""
    if height < 1 or width < 1:
        raise ValueError(f"scene size must be at least 1×1, got {width}×{height}")
    top, bottom = rng.uniform(0.4, 0.9, 3), rng.uniform(0.1, 0.5, 3)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = ((1 - t) * top + t * bottom) * np.ones((1, width, 1), np.float32)
    img = np.ascontiguousarray(img * 255).astype(np.uint8)
    diag = float(np.hypot(height, width))
    n = n_leaves or int(40 + 0.0015 * height * width)
    r_min, r_max = max(1.0, diag / 120), diag / 5
    # radii ~ r^-3 (scale invariance) by inverse-CDF sampling; drawn back to front, so the small ones stay visible
    u = rng.random(n)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    for r in np.sort(radii)[::-1]:
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.3:  # man-made structure: rectangles (buildings, cars, signs)
            w2, h2 = int(r * rng.uniform(0.5, 1.5)), int(r * rng.uniform(0.5, 2.0))
            cv2.rectangle(img, (cx - w2, cy - h2), (cx + w2, cy + h2), color, -1, cv2.LINE_AA)
        else:
            cv2.circle(img, (cx, cy), int(max(r, 1)), color, -1, cv2.LINE_AA)
    noise = rng.normal(0, 4, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.7).astype(np.float32) + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def rainy_scenes(count: int, size: tuple[int, int], seed: int = 0,
                 conditions=(None,)) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` seeded (rainy, clean) RGB uint8 pairs of `size` (H, W): rain (``derain_edge.rain.render_rain``) over
    dead-leaves scenes. The one source of synthetic data without any download: the default calibration set
    (``calibration.build.synthetic``), export's default validation pairs (``export.cost``) and derain-bench's INT8
    calibration all draw from it. `conditions` cycles over the scenes: None = the renderer's default heavy-rain
    ranges, a preset name (``derain_edge.rain.PRESETS``), or "dry" (no rain: the clean scene is the input too)."""
    from .rain import RainConfig, render_rain

    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in size)
    out = []
    for i in range(int(count)):
        clean = dead_leaves(h, w, rng)
        condition = conditions[i % len(conditions)]
        if condition == "dry":
            out.append((clean.copy(), clean))
            continue
        config = None if condition is None else RainConfig.preset(condition)
        rainy = render_rain(clean.astype(np.float32) / 255.0, rng, config)
        out.append((np.round(np.clip(rainy, 0, 1) * 255).astype(np.uint8), clean))
    return out
