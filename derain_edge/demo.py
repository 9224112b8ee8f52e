"""`derain-demo`: the shipped LPNet on something to look at, with no data needed.

Without --input it renders heavy rain (our synthesizer) over procedural dead-leaves scenes, derains them and writes
a rainy | derained | clean picture with PSNR-Y. With --input it derains your images (files or folders) and writes a
side-by-side for each.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from .progress import progress

from .imageio import ImageError, list_images, read_image, write_image
from .infer import derain_rgb
from .metrics import psnr_y
from .pictures import grid, label


def _load_model(weights: str | None):
    from lpnet import load_pretrained

    return load_pretrained(weights)


def synthetic_demo(model, out: Path, scenes: int = 3, seed: int = 0) -> list[tuple[float, float]]:
    from .rain import RainConfig, render_rain
    from .scenes import dead_leaves

    rows, scores = [], []
    for i in progress(range(scenes), desc="demo scenes", unit="scene"):
        rng = np.random.default_rng([seed, i])
        clean = dead_leaves(320, 480, rng)
        rainy = np.round(render_rain(clean.astype(np.float32) / 255, rng, RainConfig.heavy()) * 255).astype(np.uint8)
        derained = derain_rgb(model, rainy)
        before, after = psnr_y(rainy, clean), psnr_y(derained, clean)
        scores.append((before, after))
        rows.append([label(rainy, f"rainy  {before:.2f} dB"), label(derained, f"derained  {after:.2f} dB"), label(clean, "clean")])
        write_image(out / f"scene{i}_rainy.png", rainy)
        write_image(out / f"scene{i}_derained.png", derained)
    write_image(out / "demo_side_by_side.png", grid(rows, tile_width=400))
    return scores


def derain_inputs(model, inputs: list[str], out: Path) -> int:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        files.extend(list_images(p) if p.is_dir() else [p])
    failed = 0
    for path in progress(files, desc="derain", unit="img"):
        try:
            rainy = read_image(path)
        except ImageError as e:
            print(f"warning: skipped {e}", file=sys.stderr)
            failed += 1
            continue
        derained = derain_rgb(model, rainy)
        write_image(out / f"{path.stem}_derained.png", derained)
        write_image(out / f"{path.stem}_side_by_side.png", grid([[label(rainy, "rainy"), label(derained, "derained (LPNet)")]], tile_width=min(640, rainy.shape[1])))
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derain-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--input", nargs="+", metavar="PATH", help="images or folders to derain (default: synthetic rainy scenes)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--weights", help="LPNet weights (default: the shipped ones)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        model = _load_model(args.weights)
        if args.input:
            failed = derain_inputs(model, args.input, out)
            print(f"derained images and side-by-sides written to {out}/")
            return 1 if failed else 0
        scores = synthetic_demo(model, out)
    except (ImageError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for i, (before, after) in enumerate(scores):
        print(f"scene {i}: rainy {before:.2f} dB → derained {after:.2f} dB PSNR-Y")
    print(f"picture: {out / 'demo_side_by_side.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
