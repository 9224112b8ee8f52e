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
from derain_edge.progress import progress

from derain_edge.imageio import ImageError, list_images, read_image, write_image
from derain_edge.infer import derain_rgb
from derain_edge.metrics import psnr_y
from derain_edge.pictures import grid, label


def _load_model(weights: str | None):
    from lpnet import load_pretrained

    return load_pretrained(weights)


# The demo's scenes cycle through the three conditions a camera meets: a downpour, light rain, a dry frame.
CONDITIONS = ("heavy", "light", "dry")


def synthetic_demo(model, out: Path, scenes: int = 3, seed: int = 0, gate: bool = True) -> list[tuple[str, float, float]]:
    """(condition, input PSNR-Y, output PSNR-Y) per scene; dry scenes are scored output vs input (input: inf)."""
    from derain_edge.gate import apply_gate
    from derain_edge.rain import RainConfig, render_rain
    from derain_edge.scenes import dead_leaves

    rows, scores = [], []
    for i in progress(range(scenes), desc="demo scenes", unit="scene"):
        condition = CONDITIONS[i % len(CONDITIONS)]
        rng = np.random.default_rng([seed, i])
        clean = dead_leaves(320, 480, rng)
        if condition == "dry":
            rainy = clean
        else:
            rainy = np.round(render_rain(clean.astype(np.float32) / 255, rng, RainConfig.preset(condition)) * 255).astype(np.uint8)
        derained = derain_rgb(model, rainy)
        if gate:
            derained = apply_gate(rainy, derained)
        before, after = psnr_y(rainy, clean), psnr_y(derained, clean)
        scores.append((condition, before, after))
        first = "dry frame (input)" if condition == "dry" else f"{condition} rain  {before:.2f} dB"
        rows.append([label(rainy, first), label(derained, f"derained  {min(after, 99):.2f} dB" + (" vs input" if condition == "dry" else "")),
                     label(clean, "clean")])
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
    parser.add_argument("--no-gate", action="store_true", help="show the model alone, without the rain gate that runtime.Derainer applies")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        model = _load_model(args.weights)
        if args.input:
            failed = derain_inputs(model, args.input, out)
            print(f"derained images and side-by-sides written to {out}/")
            return 1 if failed else 0
        scores = synthetic_demo(model, out, gate=not args.no_gate)
    except (ImageError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full output folder: one line, no traceback
        from derain_edge.outputs import os_error_line

        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 1
    for i, (condition, before, after) in enumerate(scores):
        if condition == "dry":
            print(f"scene {i}: dry frame → output vs input {min(after, 99):.2f} dB PSNR-Y (higher: left alone)")
        else:
            print(f"scene {i}: {condition} rain {before:.2f} dB → derained {after:.2f} dB PSNR-Y")
    print(f"picture: {out / 'demo_side_by_side.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
