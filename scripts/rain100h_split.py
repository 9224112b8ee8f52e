"""The one data split of the generalist LPNet: heavy (rain100h-dev) and light (rain100l-dev) pairs split *by
background*, and the clean photos split into training photos and held-out dry sets.

Writes symlink folders under DEST (default runs/splits):
  heavy/{train,val,test}/{rainy,clean}   Rain100H pairs
  light/{train,val,test}/{rainy,clean}   Rain100L pairs whose background lies in the same part of the heavy split
  clean-train/                            photos to render rain over and to use as dry pairs in training
  dry/{val,test-bsds,test-urban}/         photos never trained on: dry frames for selection (val) and scoring (test)

Why this split: Rain100L and Rain100H render rain over the same photos, and Rain100H holds four backgrounds twice
(pairs 6/25, 7/36, 9/58, 10/69). The earlier split by file name put 6, 7, 10 and 58 into the test part while their
twins were trained on. Here the heavy test part is the 12 old test pairs whose background was never trained on, so
the shipped weights (fine-tuned from the heavy-only run) have not seen any test background; val is unchanged.
Every light pair follows its background, and the script refuses to write a split whose test or val backgrounds
appear in a training part (derain_edge.splits).

CBSD68 is never used: 12 of the rain100h-dev backgrounds are CBSD68 photos.
usage: python scripts/rain100h_split.py [--data ../shared/data] [--out runs/splits]
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from derain_edge.splits import HEAVY, make_split  # noqa: E402

def make_smoke_data() -> tuple[Path, Path]:
    """A tiny data folder of the real layout: every fixed heavy name, one light twin per part, and clean photos."""
    import cv2
    import numpy as np

    from derain_edge.imageio import write_image
    from derain_edge.smoke import add_streaks, scratch_dir

    def tiny_scene(w, h, seed):  # blocky random scenes: distinct backgrounds, as different photos are
        blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
        return cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)

    root = scratch_dir()
    names = HEAVY["test"] + HEAVY["val"] + ["4", "9"]
    for i, name in enumerate(names):
        clean = tiny_scene(64, 48, seed=i)
        for kind, img in (("clean", clean), ("rainy", add_streaks(clean, i))):
            write_image(root / "rain100h-dev" / kind / f"{name}.png", img)
            if name in ("34", "24", "4"):  # light pairs share these backgrounds
                write_image(root / "rain100l-dev" / kind / f"{int(name):03d}.png", img)
    for folder, stems in (("bsds500-filtered", [f"test_{i}" for i in range(8)] + ["train_1", "val_1"]),
                          ("urban100-half", ["img_001", "img_090"]), ("sun-hays80", ["a_sun", "b_sun"])):
        for j, stem in enumerate(stems):
            write_image(root / "clean" / folder / f"{stem}.png", tiny_scene(64, 48, seed=100 + 10 * len(folder) + j))
    return root, root / "out"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data", help="folder with rain100h-dev, rain100l-dev, clean/")
    ap.add_argument("--out", type=Path, default=ROOT / "runs/splits")
    ap.add_argument("--smoke", action="store_true", help="run on a tiny generated data folder (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.data, args.out = make_smoke_data()
    try:
        sizes = make_split(args.data, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name in ("heavy", "light", "dry"):
        if name in sizes:
            print(f"{name}: " + ", ".join(f"{p} {n}" for p, n in sizes[name].items()))
    print(f"clean-train: {sizes['clean-train']} photos")
    print(f"wrote {args.out}; no val/test background appears in a training part")
    return 0


if __name__ == "__main__":
    sys.exit(main())
