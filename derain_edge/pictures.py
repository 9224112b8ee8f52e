"""Labelled image grids (side-by-sides, contact sheets): the pictures people look at instead of reading numbers."""
from __future__ import annotations

import cv2
import numpy as np


def label(rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of an RGB uint8 tile with `text` on a dark band in its top-left corner."""
    out = np.ascontiguousarray(rgb.copy())
    scale = max(0.4, min(out.shape[1], 640) / 900)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(rows: list[list[np.ndarray]], tile_width: int = 400, gap: int = 4) -> np.ndarray:
    """Stacks rows of RGB tiles, each resized to `tile_width` wide and padded to the row's tallest tile."""
    rendered = []
    for row in rows:
        tiles = [cv2.resize(t, (tile_width, max(1, round(t.shape[0] * tile_width / t.shape[1]))), interpolation=cv2.INTER_AREA) for t in row]
        height = max(t.shape[0] for t in tiles)
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, gap), (0, 0)), constant_values=255) for t in tiles]
        rendered.append(np.pad(np.hstack(padded), ((0, gap), (0, 0), (0, 0)), constant_values=255))
    width = max(r.shape[1] for r in rendered)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rendered])
