"""Accuracy cost of every TFLite precision on real pairs: ``python -m export.tflite_measure`` (docs/export_mobile.md).

Each precision's file is made by the exporter's own TFLite target (``export.tflite.export_tflite``, calibration and
the model's int16x8 weight split included) and scored by the exporter's own cost measurement (``export.cost.measure``:
the runtime's LiteRT engine behind its pad/tile policy, against PyTorch FP32 fitted the same way), so every number
here is what ``derain-export`` would write in a sidecar and what ``Derainer(file, gate=False)`` gives. Prints a
Markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from derain_edge.files import atomic_write_text
from derain_edge.progress import progress
from derain_edge.registry import get_spec, list_models, load_model
from derain_edge.sizes import parse_size, size_json

from . import cost as C
from . import tflite
from .exporter import CachedReference
from .job import ExportJob


def measure(model, pairs_dir: Path, size: tuple[int, int], precisions, calib, limit: int | None,
            keep: Path | None = None, name: str = "lpnet") -> dict:
    """{precision: cost row} for the `model` (registry entry `name`) at one fixed `size` on `pairs_dir`."""
    try:
        pairs = C.load_pairs(pairs_dir, limit)
    except C.CostError as e:
        raise SystemExit(f"error: {e}") from None
    if not pairs:
        raise SystemExit(f"error: no rainy/clean pairs under {pairs_dir}")
    reference = CachedReference(model)  # PyTorch FP32 once per input, shared by every precision
    rows, frames, convert_s = {}, None, 0.0
    with tempfile.TemporaryDirectory(prefix="derain-tflite-measure-") as work:
        out_dir = keep or Path(work)
        for p in progress(precisions, desc="precisions", unit="model", leave=False):
            t0 = time.perf_counter()
            job = ExportJob(out_dir=out_dir, stem=name, precision=p, sizes=[size], hints=get_spec(name).export_hints,
                            calib=calib if p in tflite.NEEDS_CALIB else None)
            (exp,) = tflite.export_tflite(model, job)
            convert_s += time.perf_counter() - t0
            frames = exp.extra["tflite"]["calibration_frames"] or frames
            cost = C.measure(exp.runner, reference, pairs, exp.sizes, str(pairs_dir))
            if "pytorch-fp32" not in rows:
                rows["pytorch-fp32"] = {"psnr_y_vs_gt_db": cost["psnr_y_fp32_db"], "ssim_y_vs_gt": cost["ssim_y_fp32"],
                                        "psnr_y_drop_db": 0.0}
            rows[p] = {"psnr_y_vs_gt_db": cost["psnr_y_db"], "ssim_y_vs_gt": cost["ssim_y"],
                       "psnr_y_drop_db": cost["psnr_y_drop_db"], "psnr_y_vs_fp32_db": cost["psnr_y_vs_fp32_db"],
                       "psnr_y_vs_fp32_min_db": cost["psnr_y_vs_fp32_min_db"], "bytes": Path(exp.path).stat().st_size}
    return {"model": name, "size": size_json(size), "pairs": len(pairs), "val": str(pairs_dir),
            "fit": cost["val"]["fit"], "calibration_frames": frames, "calibration_size": list(calib.shape[2:]),
            "convert_s": round(convert_s, 1), "rows": rows, "versions": tflite.versions()}


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
    ap.add_argument("--model", default="lpnet", choices=list_models(), help="registered model (default lpnet)")
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
    from calibration import build_calibration

    model = load_model(args.model)[0].eval()
    calib = build_calibration(None, count=args.calib_count, size=calib_size, warn=False).data
    result = measure(model, pairs, size, precisions, calib, args.limit, Path(args.keep) if args.keep else None,
                     name=args.model)
    print(table(result))
    atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
