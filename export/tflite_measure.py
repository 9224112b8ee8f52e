"""Accuracy cost of every TFLite precision on real pairs: ``python -m export.tflite_measure`` (docs/export_mobile.md).

Converts the model once per size (one onnx2tf SavedModel, then each precision), runs each .tflite in LiteRT on
paired rainy/clean images reflect-padded (centred) to the fixed size, crops the output back, and reports PSNR-Y of
each precision vs the PyTorch FP32 output on the same padded input and vs the clean image (with the drop from FP32).
Prints a Markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from derain_edge.files import atomic_write_text
from derain_edge.imageio import read_pairs
from derain_edge.registry import get_spec

LPNET_SENSITIVE = get_spec("lpnet").export_hints.int8_sensitive_weights
from derain_edge.sizes import parse_size, size_json
from derain_edge.metrics import psnr_y, ssim_y
from derain_edge.progress import progress

from . import tflite


def pad_to(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[slice, slice], np.ndarray]:
    """Reflect-pads (centred) an H×W×3 image to `size`: (padded, slices of the original region, the original)."""
    h, w = rgb.shape[:2]
    th, tw = size
    if h > th or w > tw:  # larger images: centre crop first
        y, x = max(0, (h - th) // 2), max(0, (w - tw) // 2)
        rgb = rgb[y:y + min(h, th), x:x + min(w, tw)]
        h, w = rgb.shape[:2]
    top, left = (th - h) // 2, (tw - w) // 2
    padded = cv2.copyMakeBorder(rgb, top, th - h - top, left, tw - w - left, cv2.BORDER_REFLECT_101)
    return padded, (slice(top, top + h), slice(left, left + w)), rgb


def _u8(chw: np.ndarray) -> np.ndarray:
    return (np.clip(chw.transpose(1, 2, 0), 0, 1) * 255.0 + 0.5).astype(np.uint8)


def measure(model, pairs_dir: Path, size: tuple[int, int], precisions, calib: np.ndarray, limit: int | None,
            keep: Path | None = None) -> dict:
    pairs = read_pairs(pairs_dir, limit)
    if not pairs:
        raise SystemExit(f"error: no rainy/clean pairs under {pairs_dir}")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="derain-tflite-measure-"))
    plain = tflite.to_keras(model, size, work / "plain")
    # int16x8 gets its sensitive weights split (tflite.split_int8_weights), as export_tflite does
    split = tflite.to_keras(model, size, work / "split", split_weights=LPNET_SENSITIVE) if "int16x8" in precisions else None
    fitted = tflite.fit_calibration(calib, size)
    runners, files = {}, {}
    for p in progress(precisions, desc="convert", unit="model", leave=False):
        path = (keep or work) / f"lpnet_{p}_{size[1]}x{size[0]}.tflite"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tflite.convert_keras(split if p == "int16x8" else plain, p,
                                                  fitted if p in tflite.NEEDS_CALIB else None))
        runners[p], files[p] = tflite.make_runner(path, size), path
    convert_s = time.perf_counter() - t0
    scores = {p: {"vs_fp32": [], "vs_gt": [], "ssim_vs_gt": []} for p in ["pytorch-fp32", *precisions]}
    for _name, rainy, clean in progress(pairs, desc="pairs", unit="pair", leave=False):
        padded, (ys, xs), rainy_c = pad_to(rainy, size)
        clean_c = pad_to(clean, size)[2]
        x = (padded.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()[0]
        ref_u8 = _u8(ref)[ys, xs]
        scores["pytorch-fp32"]["vs_gt"].append(psnr_y(ref_u8, clean_c))
        scores["pytorch-fp32"]["ssim_vs_gt"].append(ssim_y(ref_u8, clean_c))
        for p, run in runners.items():
            out = _u8(run(x)[0])[ys, xs]
            scores[p]["vs_fp32"].append(psnr_y(out, ref_u8))
            scores[p]["vs_gt"].append(psnr_y(out, clean_c))
            scores[p]["ssim_vs_gt"].append(ssim_y(out, clean_c))
    base = float(np.mean(scores["pytorch-fp32"]["vs_gt"]))
    rows = {}
    for p, s in scores.items():
        gt = float(np.mean(s["vs_gt"]))
        rows[p] = {"psnr_y_vs_gt_db": round(gt, 3), "ssim_y_vs_gt": round(float(np.mean(s["ssim_vs_gt"])), 4),
                   "psnr_y_drop_db": round(base - gt, 3)}
        if s["vs_fp32"]:
            finite = [v for v in s["vs_fp32"] if np.isfinite(v)]
            rows[p]["psnr_y_vs_fp32_db"] = round(float(np.mean(finite)), 2) if finite else float("inf")
            rows[p]["psnr_y_vs_fp32_min_db"] = round(float(np.min(s["vs_fp32"])), 2)
            rows[p]["bytes"] = files[p].stat().st_size
    return {"size": size_json(size), "pairs": len(pairs), "val": str(pairs_dir), "calibration_frames": int(len(fitted)),
            "calibration_size": list(calib.shape[2:]), "convert_s": round(convert_s, 1), "rows": rows,
            "versions": tflite.versions()}


def table(result: dict) -> str:
    lines = ["| precision | PSNR-Y vs FP32 (mean / min) | PSNR-Y vs GT | drop vs FP32 | SSIM-Y vs GT | size |",
             "|---|---|---|---|---|---|"]
    for p, r in result["rows"].items():
        vs = f"{r['psnr_y_vs_fp32_db']} / {r['psnr_y_vs_fp32_min_db']} dB" if "psnr_y_vs_fp32_db" in r else "—"
        size = f"{r['bytes'] / 1024:.0f} kB" if "bytes" in r else "—"
        lines.append(f"| {p} | {vs} | {r['psnr_y_vs_gt_db']:.2f} dB | {r['psnr_y_drop_db']:+.3f} dB | "
                     f"{r['ssim_y_vs_gt']:.4f} | {size} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="../shared/data/rain100h-dev", help="folder with rainy/ and clean/")
    ap.add_argument("--size", default="640x480", help="WxH (width first) of the .tflite files (default 640x480)")
    ap.add_argument("--precisions", default="fp32,fp16,int16x8,int8")
    ap.add_argument("--limit", type=int, default=None, help="use the first N pairs")
    ap.add_argument("--calib-count", type=int, default=32)
    ap.add_argument("--calib-size", default="320x240",
                    help="WxH of the synthetic calibration frames (default 320x240, the CLI default)")
    ap.add_argument("--json", default="runs/tflite_cost.json")
    ap.add_argument("--keep", default=None, help="folder to keep the .tflite files in")
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size, minimum=16)
        calib_size = parse_size(args.calib_size, option="--calib-size", minimum=16)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [p for p in precisions if p not in tflite.PRECISIONS]
    if bad:
        print(f"error: unknown precision(s) {bad}; choose from {tflite.PRECISIONS}", file=sys.stderr)
        return 2
    pairs = Path(args.pairs)
    if not (pairs / "rainy").is_dir() or not (pairs / "clean").is_dir():
        print(f"error: {pairs} has no rainy/ and clean/ folders", file=sys.stderr)
        return 2
    import lpnet
    from calibration import build_calibration

    model = lpnet.load_pretrained().eval()
    calib = build_calibration(None, count=args.calib_count, size=calib_size, warn=False).data
    result = measure(model, pairs, size, precisions, calib, args.limit, Path(args.keep) if args.keep else None)
    print(table(result))
    atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
