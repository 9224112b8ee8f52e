"""Makes docs/lpnet_rain100h.png: rainy | shipped-LPNet output | clean for a few held-out Rain100H test pairs.

usage: python scripts/readme_picture.py [PAIRS_DIR] [OUT_PNG]   (defaults: runs/rain100h/test docs/lpnet_rain100h.png)
Run scripts/rain100h_split.py first.
"""
import sys
from pathlib import Path

import lpnet
from derain_edge.imageio import list_pairs, read_image, write_image
from derain_edge.infer import derain_rgb
from derain_edge.metrics import psnr_y
from derain_edge.pictures import grid, label

NAMES = ("7", "38", "84")  # from the test split: a scene, a face/figure, a landscape


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    pairs_dir = Path(argv[0]) if argv else root / "runs/rain100h/test"
    out = Path(argv[1]) if len(argv) > 1 else root / "docs/lpnet_rain100h.png"
    model = lpnet.load_pretrained()
    rows = []
    for rainy_path, clean_path in list_pairs(pairs_dir / "rainy", pairs_dir / "clean"):
        if rainy_path.stem not in NAMES:
            continue
        rainy, clean = read_image(rainy_path), read_image(clean_path)
        derained = derain_rgb(model, rainy)
        rows.append([
            label(rainy, f"rainy {psnr_y(rainy, clean):.2f} dB"),
            label(derained, f"LPNet {psnr_y(derained, clean):.2f} dB"),
            label(clean, "clean"),
        ])
    write_image(out, grid(rows, tile_width=360))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
