"""Which images share a background: the guard that keeps test scores honest.

Rain100H and Rain100L render rain over the same photos, and Rain100H itself holds a few backgrounds twice (its
pairs 6/25, 7/36, 9/58 and 10/69 differ only in the rain). A split by file name therefore leaks: a model trained on
one pair has seen the background of another. Backgrounds are compared by content — a 48×32 grey thumbnail in the
image's own orientation, mean absolute difference below a threshold — so sizes off by a pixel (480×320 vs
481×321), re-encoding and a different file name still match, while different photos differ by 20+ grey levels.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .imageio import list_images, read_image

# The split of the generalist LPNet (scripts/rain100h_split.py writes it; derain-eval --suite scores its test parts).
# Heavy test: the 12 pairs of the first heavy-only split whose background was never trained on (its other 4 test
# pairs, 6, 7, 10 and 58, have twins in its training part); val unchanged, so weights fine-tuned from that run
# have seen no test background either.
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
        raise ValueError(f"{heavy}/clean lacks pairs {sorted(missing, key=int)} of the fixed split")
    return {**HEAVY, "train": [n for n in names if n not in held]}


def split_light(heavy: Path, light: Path, parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each light pair goes to the part of the heavy pair that shares its background."""
    heavy_thumbs = thumbnails(heavy / "clean")
    part_of = {n: part for part, names in parts.items() for n in names}
    out: dict[str, list[str]] = {part: [] for part in parts}
    for path, thumb in thumbnails(light / "clean").items():
        matches = {part_of[q.stem] for _, q in overlaps(heavy_thumbs, {path: thumb})}
        if len(matches) > 1:
            raise BackgroundOverlapError(f"the background of {path} is in heavy parts {sorted(matches)}")
        out[matches.pop() if matches else "train"].append(path.stem)
    return out

THUMB = (48, 32)          # landscape thumbnail (w, h); portrait images use (32, 48)
SAME_BACKGROUND = 6.0     # mean absolute grey difference (0–255) below which two images share a background


class BackgroundOverlapError(ValueError):
    """A test image shares its background with a training image."""


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    size = THUMB if grey.shape[1] >= grey.shape[0] else THUMB[::-1]
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def thumbnails(folder: str | Path) -> dict[Path, np.ndarray]:
    return {p: thumbnail(read_image(p)) for p in list_images(folder)}


def same_background(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a - b).mean()) < SAME_BACKGROUND


def overlaps(train: dict[Path, np.ndarray], test: dict[Path, np.ndarray]) -> list[tuple[Path, Path]]:
    """Every (test image, training image) pair that shares a background."""
    return [(p, q) for p, a in test.items() for q, b in train.items() if same_background(a, b)]


def check_disjoint(train_folders, test_folders) -> None:
    """Raises BackgroundOverlapError naming the pairs when any test image's background is in a training folder."""
    train = {p: t for f in train_folders for p, t in thumbnails(f).items()}
    test = {p: t for f in test_folders for p, t in thumbnails(f).items()}
    found = overlaps(train, test)
    if found:
        listed = "; ".join(f"{a} ~ {b}" for a, b in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise BackgroundOverlapError(f"{len(found)} test image(s) share a background with training images: {listed}")


def make_split(data: str | Path, out: str | Path) -> dict:
    """Writes the split of DATA (the layout of ../shared/data) as symlink folders under OUT; returns the part sizes.
    Raises ValueError (BackgroundOverlapError) when a val/test background also lies in a training part."""
    data, out = Path(data), Path(out)
    heavy, light = data / "rain100h-dev", data / "rain100l-dev"
    if not (heavy / "rainy").is_dir():
        raise ValueError(f"{heavy}/rainy not found (the Rain100H dev pairs live in ../shared/data/rain100h-dev)")
    sets = {"heavy": (heavy, split_heavy(heavy))}
    if (light / "rainy").is_dir():
        sets["light"] = (light, split_light(heavy, light, sets["heavy"][1]))
    for name, (src, parts) in sets.items():
        for part, names in parts.items():
            for kind in ("rainy", "clean"):
                files = {p.stem: p for p in list_images(src / kind)}
                link([files[n] for n in names], out / name / part / kind)
    photos = [p for f in CLEAN_FOLDERS if (data / "clean" / f).is_dir() for p in list_images(data / "clean" / f)]
    held_out = {part: pick(photos) for part, pick in DRY.items()}
    for part, files in held_out.items():
        link(files, out / "dry" / part)
    taken = {p for files in held_out.values() for p in files}
    link([p for p in photos if p not in taken], out / "clean-train")
    # the guard: no val/test background in anything trained on
    trained = [out / n / "train" / "clean" for n in sets] + [out / "clean-train"]
    held = [out / n / p / "clean" for n in sets for p in ("val", "test")] + [out / "dry" / p for p in DRY]
    check_disjoint(trained, held)
    sizes = {name: {p: len(v) for p, v in parts.items()} for name, (_, parts) in sets.items()}
    sizes["dry"] = {p: len(v) for p, v in held_out.items()}
    sizes["clean-train"] = len(photos) - len(taken)
    return sizes
