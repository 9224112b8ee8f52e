"""The rain gate: keep a derainer's output where it removed rain, keep the input frame everywhere else.

A small derainer does two things to a frame: it removes rain, and it slightly changes what is not rain (softens
texture, shifts flat colours). On a dry frame only the second happens. Rain is *additive and bright* (JORDER's
O = B + S, Yang et al. CVPR'17): where the model removed rain, input − output is positive in luma and clustered
along streaks; its side effects are small and of either sign. So, per pixel (luma residual r = Y_in − Y_out, 0–255):

    r      = r − median(r)                                                    a uniform brightness shift is not rain
    m      = clip((G_σ * r − t0) / (t1 − t0), 0, 1), dilated by 3×3          streak pixels the model removed
    c      = fraction of pixels with r > 10                                   how rainy the whole frame is
    g      = max(m, clip((c − c0) / (c1 − c0), 0, 1))                         heavy rain: the whole output
    result = input + g · (output − input)

No learned weights: numpy + OpenCV, a few ms at 640×480, the same for every backend (runtime.Derainer applies it
after the engine, so ONNX/TFLite/CoreML/TensorRT artifacts need nothing extra; docs/runtime.md gives the formula for
users who run an artifact without our runtime). Thresholds were chosen on the validation parts of the split
(never the test parts); `derain-eval --suite` without `--gate` scores the model alone. The median step came from
ANLCL-lite's G_B, which darkens every frame by ~15 grey levels (learned in stage 1): without it the
coverage rule read that shift as rain everywhere and passed the whole output (numbers in docs/runtime.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class GateConfig:
    t0: float = 4.0          # grey levels: below this blurred positive residual, a pixel keeps its input
    t1: float = 12.0         # … above this, it takes the model's output
    sigma: float = 1.0       # px: Gaussian that joins a streak's pixels
    c0: float = 0.05         # rain coverage (share of pixels with r > 10) where the whole-frame gate starts …
    c1: float = 0.15         # … and where the whole output is used


def gate_weights(inp: np.ndarray, out: np.ndarray, cfg: GateConfig = GateConfig()) -> np.ndarray:
    """H×W float32 in [0, 1]: how much of `out` to use at each pixel (RGB uint8 frames of the same shape)."""
    if inp.shape != out.shape or inp.ndim != 3 or inp.shape[2] != 3:
        raise ValueError(f"rain gate needs two H×W×3 frames of the same shape, got {inp.shape} and {out.shape}")
    r = inp.astype(np.float32) @ _LUMA - out.astype(np.float32) @ _LUMA
    r -= np.float32(np.median(r[::4, ::4]))  # the frame's uniform brightness shift (a subsample: same value, 16× cheaper)
    removed = cv2.GaussianBlur(r, (0, 0), cfg.sigma)  # signed: a softened edge (+ and − side by side) cancels
    m = np.clip((removed - cfg.t0) / (cfg.t1 - cfg.t0), 0.0, 1.0)
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    coverage = float((r > 10.0).mean())
    return np.maximum(m, np.float32(np.clip((coverage - cfg.c0) / (cfg.c1 - cfg.c0), 0.0, 1.0)))


def apply_gate(inp: np.ndarray, out: np.ndarray, cfg: GateConfig = GateConfig()) -> np.ndarray:
    """input + g · (output − input), rounded to uint8; both frames RGB (the luma weights assume that order)."""
    g = gate_weights(inp, out, cfg)[..., None]
    x = inp.astype(np.float32)
    return np.clip(np.rint(x + g * (out.astype(np.float32) - x)), 0, 255).astype(np.uint8)
