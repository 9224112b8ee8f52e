"""The bundled demo source: fresh rain from our synthesizer over a slowly panned dead-leaves scene, so
``derain-run demo`` shows something on any machine — no camera, no download.

The scene is one wide dead-leaves panorama (``derain_edge.scenes``); a window pans across it and back
(ping-pong), and every frame gets its own rain (``derain_edge.rain.render_rain``, seeded per frame, so the demo is
reproducible). ``pan=0`` keeps the camera still (what the temporal stabiliser is meant for).
"""
from __future__ import annotations

import numpy as np

from derain_edge.rain import RainConfig, render_rain
from derain_edge.scenes import dead_leaves

from .source_base import Source


def steady_rain(rng: np.random.Generator, scale: float = 1.0) -> RainConfig:
    """A RainConfig whose ranges are single values drawn once: rain in a video keeps its direction, density and
    brightness from frame to frame (only the streaks move); the synthesizer would otherwise redraw them per call."""
    base = RainConfig.heavy()
    fixed = {}
    for name in ("angle", "density", "length", "width", "intensity", "motion_blur"):
        lo, hi = getattr(base, name)
        v = float(rng.uniform(lo, hi))
        fixed[name] = (v, v)
    fixed["density"] = (0.6 * fixed["density"][0],) * 2  # a little lighter than Rain100H's heaviest
    return base.replace(**fixed, layers=(2, 2), veil_prob=0.0, drop_prob=0.0, scale=scale)


class DemoSource(Source):
    """frames: how many frames before it ends (None = forever); size: (H, W); pan: pixels per frame."""

    live = False

    def __init__(self, frames: int | None = 150, size: tuple[int, int] = (240, 320), pan: float = 2.0,
                 seed: int = 0, rain: RainConfig | None = None, fps: float = 30.0):
        h, w = (int(v) for v in size)
        if h < 8 or w < 8:
            raise ValueError(f"demo frames must be at least 8×8, got {w}×{h}")
        if frames is not None and frames < 1:
            raise ValueError(f"demo needs at least one frame, got {frames}")
        self.size = (h, w)
        self.frames = frames
        self.count = frames
        self.pan = float(pan)
        self.seed = int(seed)
        self.fps = float(fps)
        rng = np.random.default_rng(self.seed)
        self.rain = rain or steady_rain(rng, scale=max(0.5, h / 320.0))
        self.panorama = dead_leaves(h, int(w * 2), rng)  # RGB uint8
        self.pos = 0
        self.clean: np.ndarray | None = None  # the clean BGR view behind the last frame (for tests and overlays)

    def open(self) -> None:
        self.pos = 0

    def view(self, i: int) -> np.ndarray:
        """The clean RGB scene window of frame i."""
        h, w = self.size
        span = self.panorama.shape[1] - w
        x = int(round(i * self.pan)) % (2 * span) if span > 0 and self.pan else 0
        x = 2 * span - x if x > span else x  # ping-pong
        return self.panorama[:, x:x + w]

    def read(self) -> np.ndarray | None:
        if self.frames is not None and self.pos >= self.frames:
            return None
        i = self.pos
        self.pos += 1
        clean = self.view(i)
        rng = np.random.default_rng((self.seed, i))
        rainy = render_rain(clean.astype(np.float32) / 255.0, rng, self.rain)
        self.clean = np.ascontiguousarray(clean[:, :, ::-1])
        return np.ascontiguousarray((np.round(rainy * 255.0).astype(np.uint8))[:, :, ::-1])
