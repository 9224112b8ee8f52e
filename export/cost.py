"""Accuracy cost of an artifact: what deploying it loses against the FP32 PyTorch model it came from.

Two measurements, both on BT.601 Y with the literature's conventions (``derain_edge.metrics``):

* **vs FP32** — PSNR-Y / SSIM-Y of the artifact's output against the FP32 PyTorch output on the same input
  (unrounded Y, so identical outputs are not scored infinite: values are capped at ``PSNR_CAP``).
* **vs ground truth** (with a paired set: ``rainy/`` and ``clean/``) — the usual derain PSNR-Y / SSIM-Y of the
  uint8-rounded outputs against the clean images, for FP32 PyTorch and for the artifact; ``psnr_y_drop_db`` is
  FP32's minus the artifact's (positive = the artifact is worse).

Every image is scored at its own size, run the way the runtime runs it (the runner is the artifact's runtime engine
behind ``derain_edge.engines.tiling.run_fitted``: a fixed-size artifact gets the image padded to the smallest of its
sizes that holds it, or tiled), so the artifact's PSNR-Y is what ``Derainer(artifact, gate=False)`` gives on the same
pairs; the FP32 reference is fitted the same way, so "vs FP32" and the drop are the conversion's alone.
Also **parity**: max|Δ| and PSNR-Y of the artifact vs PyTorch on one seeded test image at an allowed size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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


# Export's default validation conditions (no --val): the project judges every model on heavy rain, light rain and
# dry frames, so its default check does too (plus moderate rain); the first (the parity image's) is heavy rain.
SYNTHETIC_CONDITIONS = (None, "light", "dry", "moderate")
SYNTHETIC_SOURCE = "synthetic: dead-leaves scenes with heavy, light, no and moderate rain (no --val given)"


def synthetic_pairs(count: int = 4, size: tuple[int, int] = (160, 224), seed: int = 12345) -> list[Pair]:
    """Dead-leaves scenes with their clean originals under SYNTHETIC_CONDITIONS, in turn: a ground-truth-bearing
    default when no --val is given (seeded differently from the default calibration set, so the cost is not measured
    on calibration data)."""
    from derain_edge.scenes import rainy_scenes

    names = [f"synthetic-{i}-{SYNTHETIC_CONDITIONS[i % len(SYNTHETIC_CONDITIONS)] or 'heavy'}" for i in range(count)]
    scenes = rainy_scenes(count, size, seed, conditions=SYNTHETIC_CONDITIONS)
    return [Pair(name, rainy, clean) for name, (rainy, clean) in zip(names, scenes)]


def to_nchw(rgb: np.ndarray) -> np.ndarray:
    return (rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).copy()


def to_rgb_float(nchw: np.ndarray) -> np.ndarray:
    """1×3×H×W [0,1] → H×W×3 on the 0–255 scale (float, clipped)."""
    return np.clip(np.asarray(nchw, np.float64)[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0


def to_uint8(nchw: np.ndarray) -> np.ndarray:
    return np.round(to_rgb_float(nchw)).astype(np.uint8)


class _FixedSizes:
    """The FP32 reference posing as a fixed-size engine, so ``run_fitted`` pads/tiles it exactly as the artifact."""

    max_size = None
    max_batch = None

    def __init__(self, run: Runner, sizes):
        self.run, self.sizes = run, [tuple(int(v) for v in s) for s in sizes]


def fitted_reference(reference: Runner, sizes) -> Runner:
    """`reference` run the way the runtime runs a fixed-size artifact of `sizes` (padded to the smallest size that
    holds the image, or tiled): "vs FP32" and the drop then measure the artifact's conversion alone, while its
    ground-truth PSNR-Y is what ``Derainer`` gives (same pad/tile policy, ``derain_edge.engines.tiling``)."""
    if sizes == "dynamic":
        return reference
    from derain_edge.engines.tiling import run_fitted

    engine = _FixedSizes(reference, sizes)
    return lambda x: run_fitted(engine, x)


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
    """The cost dict of the sidecar (see module doc); means over images at their own size (`runner` fits them to a
    fixed-size artifact the way the runtime does, and `reference` is fitted to its `sizes` the same way)."""
    from derain_edge.progress import progress as _progress

    reference = fitted_reference(reference, sizes)
    vs_fp32_p, vs_fp32_s, gt_ref_p, gt_art_p, gt_ref_s, gt_art_s = [], [], [], [], [], []
    for pair in _progress(pairs, desc="  cost", unit="img", leave=False, disable=not progress):
        rainy, clean = pair.rainy, pair.clean
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
    cost["val"] = {"source": source, "n": len(pairs),
                   "fit": "native size" if sizes == "dynamic" else
                   "native size, padded/tiled to the artifact's sizes as the runtime runs it"}
    return cost
