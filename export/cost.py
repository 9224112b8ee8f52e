"""Accuracy cost of an artifact: what deploying it loses against the FP32 PyTorch model it came from.

Two measurements, both on BT.601 Y with the literature's conventions (``derain_edge.metrics``):

* **vs FP32** — PSNR-Y / SSIM-Y of the artifact's output against the FP32 PyTorch output on the same input
  (unrounded Y, so identical outputs are not scored infinite: values are capped at ``PSNR_CAP``).
* **vs ground truth** (with a paired set: ``rainy/`` and ``clean/``) — the usual derain PSNR-Y / SSIM-Y of the
  uint8-rounded outputs against the clean images, for FP32 PyTorch and for the artifact; ``psnr_y_drop_db`` is
  FP32's minus the artifact's (positive = the artifact is worse).

Fixed-size artifacts see every image fitted to their size: a centre crop when the image is at least that large
(no resampling, so the scores stay comparable to full-image ones), a resize otherwise; the result says which.
Also **parity**: max|Δ| and PSNR-Y of the artifact vs PyTorch on one seeded test image at an allowed size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from derain_edge.metrics import psnr, rgb_to_y, ssim

PSNR_CAP = 150.0  # dB; reported when the outputs are (numerically) identical
PARITY_SIZE = (96, 128)  # H, W of the parity test image for dynamic artifacts

Runner = Callable[[np.ndarray], np.ndarray]


class CostError(ValueError):
    """The cost could not be measured (bad validation folder, runner failure), with the reason."""


@dataclass
class Pair:
    name: str
    rainy: np.ndarray  # H×W×3 RGB uint8
    clean: np.ndarray | None


def load_pairs(val_dir: str | Path, limit: int | None = None) -> list[Pair]:
    """Paired images of ``val_dir/rainy`` and ``val_dir/clean`` (by file stem); CostError when unusable."""
    from derain_edge.imageio import ImageError, read_pairs

    root = Path(val_dir)
    if not (root / "rainy").is_dir() or not (root / "clean").is_dir():
        raise CostError(f"--val {root}: expected a folder with rainy/ and clean/ subfolders")
    try:
        return [Pair(name, rainy, clean) for name, rainy, clean in read_pairs(root, limit)]
    except ImageError as e:
        raise CostError(f"--val: {e}") from e


def synthetic_pairs(count: int = 4, size: tuple[int, int] = (160, 224), seed: int = 12345) -> list[Pair]:
    """Rain over dead-leaves scenes with their clean originals: a ground-truth-bearing default when no --val is given
    (seeded differently from the default calibration set, so the cost is not measured on calibration data)."""
    from derain_edge.scenes import rainy_scenes

    return [Pair(f"synthetic-{i}", rainy, clean) for i, (rainy, clean) in enumerate(rainy_scenes(count, size, seed))]


def fit(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """`img` brought to `size` (H, W): ("crop") centre crop if it is at least that large, else ("resize")."""
    h, w = size
    ih, iw = img.shape[:2]
    if (ih, iw) == (h, w):
        return img, "none"
    if ih >= h and iw >= w:
        y0, x0 = (ih - h) // 2, (iw - w) // 2
        return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w]), "crop"
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if ih >= h and iw >= w else cv2.INTER_LINEAR), "resize"


def best_size(img_hw: tuple[int, int], sizes: list[list[int]]) -> tuple[int, int]:
    """Of an artifact's fixed sizes, the one that fits inside the image with least loss (else the largest)."""
    ih, iw = img_hw
    inside = [tuple(s) for s in sizes if s[0] <= ih and s[1] <= iw]
    if inside:
        return max(inside, key=lambda s: s[0] * s[1])
    # same orientation first, then the closest area
    return min((tuple(s) for s in sizes), key=lambda s: (((s[0] > s[1]) != (ih > iw)), abs(s[0] * s[1] - ih * iw)))


def to_nchw(rgb: np.ndarray) -> np.ndarray:
    return (rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).copy()


def to_rgb_float(nchw: np.ndarray) -> np.ndarray:
    """1×3×H×W [0,1] → H×W×3 on the 0–255 scale (float, clipped)."""
    return np.clip(np.asarray(nchw, np.float64)[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0


def to_uint8(nchw: np.ndarray) -> np.ndarray:
    return np.round(to_rgb_float(nchw)).astype(np.uint8)


def torch_runner(model) -> Runner:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).clamp(0, 1).numpy()

    return run


def _capped(value: float) -> float:
    return PSNR_CAP if not math.isfinite(value) else min(float(value), PSNR_CAP)


def compare_float(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(PSNR-Y, SSIM-Y) between two NCHW [0,1] outputs, on unrounded Y (SSIM needs ≥ 11×11)."""
    ya, yb = rgb_to_y(to_rgb_float(a), round_y=False), rgb_to_y(to_rgb_float(b), round_y=False)
    s = ssim(ya, yb) if min(ya.shape) >= 11 else float("nan")
    return _capped(psnr(ya, yb)), float(s)


def parity(runner: Runner, reference: Runner, size: tuple[int, int], seed: int = 7) -> dict:
    """max|Δ| and PSNR-Y of `runner` vs `reference` on a seeded dead-leaves + rain image of `size`."""
    pair = synthetic_pairs(1, size, seed)[0]
    x = to_nchw(pair.rainy)
    a, b = runner(x), reference(x)
    if a.shape != b.shape:
        raise CostError(f"artifact output shape {a.shape} differs from PyTorch's {b.shape}")
    p, _ = compare_float(a, b)
    return {"reference": "pytorch-fp32", "max_abs_diff": float(np.abs(a.astype(np.float64) - b).max()),
            "psnr_y_db": round(p, 3), "size": [int(size[0]), int(size[1])]}


def measure(runner: Runner, reference: Runner, pairs: list[Pair], sizes: str | list[list[int]],
            source: str, progress: bool = False) -> dict:
    """The cost dict of the sidecar (see module doc); means over images."""
    from derain_edge.progress import progress as _progress

    vs_fp32_p, vs_fp32_s, gt_ref_p, gt_art_p, gt_ref_s, gt_art_s = [], [], [], [], [], []
    fits = set()
    for pair in _progress(pairs, desc="  cost", unit="img", leave=False, disable=not progress):
        rainy, clean = pair.rainy, pair.clean
        if sizes != "dynamic":
            size = best_size(rainy.shape[:2], sizes)
            rainy, how = fit(rainy, size)
            clean = fit(clean, size)[0] if clean is not None else None
            fits.add(how)
        x = to_nchw(rainy)
        try:
            out = runner(x)
        except Exception as e:  # noqa: BLE001 - a backend failure is reported with the image that caused it
            raise CostError(f"the artifact failed on {pair.name} ({x.shape[3]}x{x.shape[2]}): {e}") from e
        ref = reference(x)
        p, s = compare_float(out, ref)
        vs_fp32_p.append(p)
        vs_fp32_s.append(s)
        if clean is not None:
            yc = rgb_to_y(clean)
            yr, ya = rgb_to_y(to_uint8(ref)), rgb_to_y(to_uint8(out))
            gt_ref_p.append(psnr(yr, yc))
            gt_art_p.append(psnr(ya, yc))
            gt_ref_s.append(ssim(yr, yc))
            gt_art_s.append(ssim(ya, yc))
    cost = {"psnr_y_vs_fp32_db": round(float(np.mean(vs_fp32_p)), 3),
            "psnr_y_vs_fp32_min_db": round(float(np.min(vs_fp32_p)), 3),
            "ssim_y_vs_fp32": round(float(np.nanmean(vs_fp32_s)), 6)}
    if gt_ref_p:
        ref_p, art_p = float(np.mean(gt_ref_p)), float(np.mean(gt_art_p))
        ref_s, art_s = float(np.mean(gt_ref_s)), float(np.mean(gt_art_s))
        cost.update({"psnr_y_fp32_db": round(ref_p, 3), "psnr_y_db": round(art_p, 3),
                     "psnr_y_drop_db": round(ref_p - art_p, 3) + 0.0,
                     "ssim_y_fp32": round(ref_s, 5), "ssim_y": round(art_s, 5), "ssim_y_drop": round(ref_s - art_s, 5) + 0.0})
    fitted = sorted(fits - {"none"})
    cost["val"] = {"source": source, "n": len(pairs),
                   "fit": "native size" if not fitted else "+".join(fitted) + " to the artifact's size"}
    return cost
