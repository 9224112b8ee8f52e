"""Makes docs/lpnet_rain100h.png: heavy rain, light rain and a dry photo from the held-out test parts, each as
input | the old heavy-only LPNet | the shipped generalist LPNet | clean (PSNR-Y per image; dry: against the input).

usage: python scripts/readme_picture.py [--splits runs/splits] [--out docs/lpnet_rain100h.png] [--smoke]
Run scripts/rain100h_split.py first (it writes runs/splits).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lpnet  # noqa: E402
from derain_edge.imageio import list_images, read_image, write_image  # noqa: E402
from derain_edge.infer import derain_rgb  # noqa: E402
from derain_edge.metrics import psnr_y  # noqa: E402
from derain_edge.pictures import grid, label  # noqa: E402

OLD_WEIGHTS = ROOT / "checkpoints/lpnet-r100h/shipped-heavy-only.safetensors"
# (condition, file inside the split): a heavy and a light pair of the test parts, and a dry test photo
ROWS = (("heavy", "heavy/test/{}/38.png"), ("light", "light/test/{}/084.png"), ("dry", "dry/test-bsds"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", type=Path, default=ROOT / "runs/splits")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/lpnet_rain100h.png")
    ap.add_argument("--smoke", action="store_true", help="tiny generated split, output in a temp folder (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        from derain_edge.smoke import scratch_dir, tiny_pairs

        tmp = scratch_dir()
        for cond, name in (("heavy", "38"), ("light", "084")):
            tiny_pairs(tmp / cond / "test", names=(name,))
        tiny_pairs(tmp / "drysrc", names=("p",))
        (tmp / "dry").mkdir()
        (tmp / "drysrc/clean/p.png").rename(tmp / "dry/test-bsds")
        args.splits, args.out = tmp, tmp / "readme.png"
    old = lpnet.load_pretrained(OLD_WEIGHTS) if OLD_WEIGHTS.exists() else None
    new = lpnet.load_pretrained()
    rows = []
    for cond, rel in ROWS:
        path = args.splits / rel.format("rainy")
        if cond == "dry":
            path = path if path.is_file() else list_images(path)[0]
            rainy = clean = read_image(path)
        else:
            rainy, clean = read_image(path), read_image(args.splits / rel.format("clean"))
        ref = "vs input" if cond == "dry" else ""
        row = [label(rainy, f"{cond}: input" + ("" if cond == "dry" else f" {psnr_y(rainy, clean):.2f} dB"))]
        for name, model in (("heavy-only LPNet", old), ("generalist LPNet", new)):
            if model is not None:
                out = derain_rgb(model, rainy)
                row.append(label(out, f"{name} {min(psnr_y(out, clean), 99):.2f} dB {ref}"))
        row.append(label(clean, "clean" if cond != "dry" else "dry photo"))
        rows.append(row)
    write_image(args.out, grid(rows, tile_width=300))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
