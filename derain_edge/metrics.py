"""PSNR / SSIM on the Y channel, with the deraining literature's MATLAB conventions (so numbers compare with papers).

* Y from MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio swing):  Y = 16 + (65.481 R + 128.553 G + 24.966 B)
  with R, G, B in [0, 1]; MATLAB returns uint8 for uint8 input, so Y is rounded to integers (``round_y=True``).
* PSNR with peak 255 on Y.
* SSIM of Wang et al. 2004 (``ssim_index.m``): 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255,
  'valid' filtering (no padding), mean of the SSIM map.
Inputs are H×W×3 RGB uint8 arrays (or float arrays already on the 0–255 scale).
"""
from __future__ import annotations

import numpy as np
import cv2

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(rgb: np.ndarray, round_y: bool = True) -> np.ndarray:
    """BT.601 luma of an RGB image on the 0–255 scale, as MATLAB ``rgb2ycbcr`` computes it (float64 output)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    if round_y and rgb.dtype == np.uint8:
        # exact integer arithmetic, rounding halves up as MATLAB's uint8 conversion does (float math would send
        # the ~200 colours whose Y is exactly k + 0.5 either way depending on the array's shape)
        c = rgb.astype(np.int64)
        num = 16 * 255000 + 65481 * c[..., 0] + 128553 * c[..., 1] + 24966 * c[..., 2]
        return ((num + 127500) // 255000).astype(np.float64)
    y = 16.0 + rgb.astype(np.float64) @ _Y_WEIGHTS
    return np.floor(y + 0.5) if round_y else y


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    a, b = _same_shape(a, b)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    return g @ g.T


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Single-channel SSIM, Wang et al. 2004, eq. (13), Gaussian-weighted local statistics."""
    a, b = _same_shape(a, b)
    if a.ndim != 2:
        raise ValueError(f"ssim() takes single-channel images, got shape {a.shape}")
    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11×11 pixels, got {a.shape[1]}×{a.shape[0]}")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    w = _gaussian_window()

    def filt(x):  # 'valid' part of the correlation, as MATLAB filter2(w, x, 'valid')
        return cv2.filter2D(x, cv2.CV_64F, w, borderType=cv2.BORDER_CONSTANT)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def psnr_y(pred_rgb: np.ndarray, target_rgb: np.ndarray) -> float:
    return psnr(rgb_to_y(pred_rgb), rgb_to_y(target_rgb))


def ssim_y(pred_rgb: np.ndarray, target_rgb: np.ndarray) -> float:
    return ssim(rgb_to_y(pred_rgb), rgb_to_y(target_rgb))


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    return a, b
