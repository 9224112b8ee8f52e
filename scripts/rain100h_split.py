"""Splits ../shared/data/rain100h-dev into train / val / test pair folders (symlinks) for the shipped LPNet recipe.

The split is fixed here so every number we report names the pairs it was measured on: `test` pairs are never used
for training or model selection, `val` pairs only pick the checkpoint.
usage: python scripts/rain100h_split.py [SOURCE] [DEST]   (defaults: ../shared/data/rain100h-dev runs/rain100h)
"""
import sys
from pathlib import Path

SPLIT = {
    "test": ["6", "7", "10", "34", "37", "38", "40", "48", "51", "53", "58", "64", "66", "76", "84", "89"],
    "val": ["24", "29", "31", "39", "86", "92"],
    "train": ["4", "9", "11", "12", "23", "25", "27", "35", "36", "41", "44", "54", "57", "63", "67", "69", "71",
              "72", "74", "75", "77", "79", "81", "83", "85", "88", "90", "96"],
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    src = Path(argv[0]) if argv else root.parent / "shared/data/rain100h-dev"
    dest = Path(argv[1]) if len(argv) > 1 else root / "runs/rain100h"
    if not (src / "rainy").is_dir():
        sys.exit(f"error: {src}/rainy not found (Rain100H dev pairs live in ../shared/data/rain100h-dev)")
    for part, names in SPLIT.items():
        for kind in ("rainy", "clean"):
            d = dest / part / kind
            d.mkdir(parents=True, exist_ok=True)
            for n in names:
                link = d / f"{n}.png"
                if not link.exists():
                    link.symlink_to((src / kind / f"{n}.png").resolve())
    print(f"wrote {dest}/{{train,val,test}}/{{rainy,clean}} ({', '.join(f'{k}: {len(v)}' for k, v in SPLIT.items())})")


if __name__ == "__main__":
    main()
