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

from derain_edge.imageio import list_images  # noqa: E402
from derain_edge.splits import BackgroundOverlapError, check_disjoint, overlaps, thumbnails  # noqa: E402

HEAVY = {
    "test": ["34", "37", "38", "40", "48", "51", "53", "64", "66", "76", "84", "89"],
    "val": ["24", "29", "31", "39", "86", "92"],
}
# clean photos held out of training: BSDS500 test part (every 4th, 50 photos), Urban100 img_081–100, the last 16
# Sun–Hays scenes for checkpoint selection
DRY = {
    "test-bsds": lambda paths: [p for p in paths if p.parent.name == "bsds500-filtered" and p.name.startswith("test_")][::4],
    "test-urban": lambda paths: [p for p in paths if p.parent.name == "urban100-half" and int(p.stem.split("_")[1]) > 80],
    "val": lambda paths: [p for p in paths if p.parent.name == "sun-hays80"][-16:],
}
CLEAN_FOLDERS = ("bsds500-filtered", "urban100-half", "sun-hays80")


def link(files, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = folder / f.name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(f.resolve())


def split_heavy(heavy: Path) -> dict[str, list[str]]:
    names = [p.stem for p in list_images(heavy / "clean")]
    held = {n for part in HEAVY.values() for n in part}
    missing = held - set(names)
    if missing:
        sys.exit(f"error: {heavy}/clean lacks pairs {sorted(missing, key=int)} of the fixed split")
    return {**HEAVY, "train": [n for n in names if n not in held]}


def split_light(heavy: Path, light: Path, parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each light pair goes to the part of the heavy pair that shares its background."""
    heavy_thumbs = thumbnails(heavy / "clean")
    part_of = {n: part for part, names in parts.items() for n in names}
    out: dict[str, list[str]] = {part: [] for part in parts}
    for path, thumb in thumbnails(light / "clean").items():
        matches = {part_of[q.stem] for _, q in overlaps(heavy_thumbs, {path: thumb})}
        if len(matches) > 1:
            sys.exit(f"error: the background of {path} is in heavy parts {sorted(matches)}")
        out[matches.pop() if matches else "train"].append(path.stem)
    return out


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
    heavy, light = args.data / "rain100h-dev", args.data / "rain100l-dev"
    if not (heavy / "rainy").is_dir():
        print(f"error: {heavy}/rainy not found (the Rain100H dev pairs live in ../shared/data/rain100h-dev)", file=sys.stderr)
        return 2
    sets = {"heavy": (heavy, split_heavy(heavy))}
    if (light / "rainy").is_dir():
        sets["light"] = (light, split_light(heavy, light, sets["heavy"][1]))
    else:
        print(f"note: {light} not found; no light-rain split", file=sys.stderr)
    for name, (src, parts) in sets.items():
        for part, names in parts.items():
            for kind in ("rainy", "clean"):
                files = {p.stem: p for p in list_images(src / kind)}
                link([files[n] for n in names], args.out / name / part / kind)
    photos = [p for f in CLEAN_FOLDERS if (args.data / "clean" / f).is_dir() for p in list_images(args.data / "clean" / f)]
    held_out = {}
    for part, pick in DRY.items():
        held_out[part] = pick(photos)
        link(held_out[part], args.out / "dry" / part)
    taken = {p for files in held_out.values() for p in files}
    link([p for p in photos if p not in taken], args.out / "clean-train")

    # the guard: no val/test background in anything trained on
    trained = [args.out / n / "train" / "clean" for n in sets] + [args.out / "clean-train"]
    held = [args.out / n / p / "clean" for n in sets for p in ("val", "test")] + [args.out / "dry" / p for p in DRY]
    try:
        check_disjoint(trained, held)
    except BackgroundOverlapError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, (_, parts) in sets.items():
        print(f"{name}: " + ", ".join(f"{p} {len(v)}" for p, v in parts.items()))
    print(f"dry: " + ", ".join(f"{p} {len(v)}" for p, v in held_out.items()) + f"; clean-train {len(photos) - len(taken)} photos")
    print(f"wrote {args.out}; no val/test background appears in a training part")
    return 0


if __name__ == "__main__":
    sys.exit(main())
