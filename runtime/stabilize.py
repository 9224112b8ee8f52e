"""Opt-in temporal stabilisation for fixed cameras: rain is random in time, the background is not.

A per-pixel recursive average of successive derained frames, ``s_t = s_{t-1} + k_t (y_t − s_{t-1})``, whose gain
k_t rises from 1 − `strength` to 1 where the new frame differs a lot from the running state (motion, a scene
cut), judged on blurred frames so that thin rain streaks do not count as motion — so static background is averaged over several frames (residual rain and model flicker fade) while moving
objects follow the current frame without ghosting. One frame of state, a handful of array operations per frame.
"""
from __future__ import annotations

import cv2
import numpy as np


class TemporalStabilizer:
    """strength ∈ [0, 1): 0 = off; 0.6 ≈ averaging the last ~4 frames where nothing moves.
    motion: the absolute difference (0–255) of the window-blurred frames above which a pixel counts as moving and
    takes the new value (blurred, because thin rain streaks must not count as motion)."""

    def __init__(self, strength: float = 0.6, motion: float = 12.0, window: int = 9):
        if not 0.0 <= float(strength) < 1.0:
            raise ValueError(f"stabilisation strength must be in [0, 1), got {strength}")
        if float(motion) <= 0:
            raise ValueError(f"motion threshold must be positive, got {motion}")
        self.strength = float(strength)
        self.motion = float(motion)
        self.window = max(1, int(window))
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """uint8 H×W×C in → stabilised uint8 out (the first frame, or a new size, passes through)."""
        y = frame.astype(np.float32)
        if self.strength == 0.0 or self.state is None or self.state.shape != y.shape:
            self.state = y
            return frame
        # compare blurred frames: rain streaks are thin and vanish in the blur, moving objects are not and don't
        k = self.window
        d = cv2.blur(y, (k, k)) - cv2.blur(self.state, (k, k))
        diff = np.abs(d).mean(axis=2, keepdims=True) if d.ndim == 3 else np.abs(d)
        # gain: (1 − strength) for still pixels, rising linearly to 1 at the motion threshold
        gain = (1.0 - self.strength) + self.strength * np.minimum(diff / self.motion, 1.0)
        self.state += gain * (y - self.state)
        return np.clip(np.round(self.state), 0, 255).astype(np.uint8)


def flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame difference (0–255 scale): the temporal noise a viewer sees on a still scene."""
    if len(frames) < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.mean([np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()
                          for a, b in zip(frames, frames[1:])]))
