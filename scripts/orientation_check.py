"""Scores a shipped model (LPNet by default) on paired data seen through flips and 90° rotations, to show which frame
orientations it can derain: rain streaks have a dominant direction (near-vertical), and a small model learns it.

Each row rotates/flips the rainy input, derains it, undoes the transform and scores against the clean image
(PSNR-Y / SSIM-Y, derain_edge.commands.evaluate's conventions).

usage: python scripts/orientation_check.py [--model lpnet|anlcl] [--pairs DIR]
       (default pairs: runs/rain100h/test, from rain100h_split.py)
       python scripts/orientation_check.py --smoke   (seconds: tiny generated pairs in a temp dir; numbers mean nothing)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from derain_edge.commands.evaluate import evaluate_pairs
from derain_edge.registry import list_models, load_model
from derain_edge.imageio import ImageError

# name → (forward transform, its inverse) on N×C×H×W
TRANSFORMS = {
    "upright (as given)": (lambda x: x, lambda y: y),
    "mirrored left-right": (lambda x: x.flip(-1), lambda y: y.flip(-1)),
    "upside down (180°)": (lambda x: x.flip(-2, -1), lambda y: y.flip(-2, -1)),
    "rotated 90°": (lambda x: x.rot90(1, (-2, -1)), lambda y: y.rot90(-1, (-2, -1))),
    "rotated 270°": (lambda x: x.rot90(-1, (-2, -1)), lambda y: y.rot90(1, (-2, -1))),
}


class Oriented(nn.Module):
    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model, (self.fwd, self.inv) = model, TRANSFORMS[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inv(self.model(self.fwd(x)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list_models(), default="lpnet")
    p.add_argument("--pairs", default="runs/rain100h/test", help="folder with rainy/ and clean/")
    p.add_argument("--smoke", action="store_true", help="check the script in seconds on tiny generated pairs")
    args = p.parse_args(argv)
    if args.smoke:
        from derain_edge.smoke import scratch_dir, tiny_pairs

        args.pairs = str(tiny_pairs(scratch_dir() / "pairs", names=("1", "2"), size=(64, 48)))
    pairs = Path(args.pairs)
    model, _ = load_model(args.model)
    print("| frame orientation | PSNR-Y | SSIM-Y |\n|---|---|---|")
    for name in TRANSFORMS:
        try:
            r = evaluate_pairs(Oriented(model, name).eval(), pairs / "rainy", pairs / "clean", warn=lambda m: None)
        except (ImageError, ValueError) as e:
            p.exit(2, f"orientation_check: {e} (the default pairs come from scripts/rain100h_split.py)\n")
        print(f"| {name} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} |", flush=True)
    print(f"| rainy input | {r['input_psnr_y']:.2f} | {r['input_ssim_y']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
