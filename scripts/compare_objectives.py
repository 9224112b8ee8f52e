"""Scores several ANLCL-lite G_B weights (one per objective) on paired data and shows them side by side on real rain.

Writes a Markdown table and JSON of PSNR-Y / SSIM-Y (derain_edge.commands.evaluate, the literature's conventions) and a grid
of real rainy photos (rows) through each model (columns), so the comparison in docs/anlcl.md can be redone.

usage: python scripts/compare_objectives.py LABEL=WEIGHTS [LABEL=WEIGHTS …] [--lpnet] [--pairs DIR] [--real DIR]
           [--photos NAME,NAME,…] [--out DIR]
   (defaults: --pairs ../shared/data/rain100h-dev, --real ../shared/data/realrain, --out runs/compare)
       python scripts/compare_objectives.py --smoke   (seconds: an untrained G_B and LPNet on tiny generated pairs and
           photos, all in a temp dir; LABEL=WEIGHTS may still be given)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

import lpnet
from anlcl_lite import load_weights
from derain_edge.commands.evaluate import evaluate_pairs
from derain_edge.files import atomic_write_text
from derain_edge.imageio import read_image, write_image
from derain_edge.infer import derain_rgb
from derain_edge.pictures import grid, label

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("trainA_Eg2.png", "trainA_Eg5.png", "valA_Eg3.JPG", "valA_Eg6.JPG")


def _fit(rgb, width: int = 320):
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (width, round(h * width / w)), interpolation=cv2.INTER_AREA) if w > width else rgb


def _smoke(args) -> None:
    """Points every input and output of `args` at tiny generated data in a temp dir (removed at exit)."""
    from anlcl_lite import LightGenerator, save_weights
    from derain_edge.smoke import scratch_dir, tiny_pairs, tiny_scene

    tmp = scratch_dir()
    args.pairs = str(tiny_pairs(tmp / "pairs", names=("1", "2")))
    write_image(tmp / "real" / "smoke.png", tiny_scene(80, 60, seed=7))
    args.real, args.photos, args.out, args.lpnet = str(tmp / "real"), "smoke.png", str(tmp / "out"), True
    args.models = args.models or [f"untrained={save_weights(LightGenerator(), tmp / 'untrained.safetensors')}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", metavar="LABEL=WEIGHTS")
    p.add_argument("--lpnet", action="store_true", help="add the shipped LPNet as a column and a row")
    p.add_argument("--pairs", default=str(ROOT.parent / "shared/data/rain100h-dev"))
    p.add_argument("--real", default=str(ROOT.parent / "shared/data/realrain"))
    p.add_argument("--photos", default=",".join(PHOTOS))
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--smoke", action="store_true", help="check the script end to end in seconds on tiny generated data")
    args = p.parse_args(argv)
    if args.smoke:
        _smoke(args)
    if not args.models:
        p.error("the following arguments are required: LABEL=WEIGHTS")
    models = {}
    for item in args.models:
        name, _, path = item.partition("=")
        if not path:
            p.error(f"{item!r}: expected LABEL=WEIGHTS")
        models[name] = load_weights(path)[0].eval()
    if args.lpnet:
        models = {"LPNet": lpnet.load_pretrained(), **models}
    out = Path(args.out)
    pairs = Path(args.pairs)
    results = {}
    for name, model in models.items():
        r = evaluate_pairs(model, pairs / "rainy", pairs / "clean", warn=lambda m: None)
        results[name] = {"psnr_y": r["psnr_y"], "ssim_y": r["ssim_y"], "n": r["n"]}
        rain = (r["input_psnr_y"], r["input_ssim_y"])
        print(f"{name:28s} PSNR-Y {r['psnr_y']:.2f} dB  SSIM-Y {r['ssim_y']:.4f}  ({r['n']} pairs)", flush=True)
    lines = ["| model | PSNR-Y | SSIM-Y |", "|---|---|---|", f"| rainy input | {rain[0]:.2f} | {rain[1]:.4f} |"]
    lines += [f"| {k} | {v['psnr_y']:.2f} | {v['ssim_y']:.4f} |" for k, v in results.items()]
    atomic_write_text(out / "scores.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "scores.json", json.dumps({"pairs": str(pairs), "rainy_input": rain, "models": results}, indent=2))
    rows = []
    for photo in args.photos.split(","):
        rgb = _fit(read_image(Path(args.real) / photo))
        rows.append([label(rgb, "rainy")] + [label(derain_rgb(m, rgb), name) for name, m in models.items()])
    write_image(out / "realrain.jpg", grid(rows, tile_width=320))
    print(f"wrote {out / 'scores.md'}, {out / 'scores.json'} and {out / 'realrain.jpg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
