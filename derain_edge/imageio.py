"""Reading and writing images with errors that name the file and the problem.

Everything inside derain-edge works on H×W×3 **RGB uint8**; OpenCV's BGR order stays at this boundary.
Grayscale is replicated to three channels, alpha is dropped, 16-bit and float images are scaled to 8 bits.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .files import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """An image that cannot be used, with the reason."""


# float images are read as [0, 1]; overshoot up to these bounds is clipped (processing noise, mild HDR), beyond them
# the array holds another convention (0..255 in float32 is the usual one) and is refused, never clipped to white
FLOAT_MIN, FLOAT_MAX = -1.0, 2.0


def to_rgb_uint8(img: np.ndarray, name: str = "image", bgr: bool = True) -> np.ndarray:
    """Normalises any OpenCV-style array (gray, BGR, BGRA; uint8, uint16, float in [0, 1]) to H×W×3 RGB uint8.

    Float arrays hold [0, 1] (values up to FLOAT_MIN..FLOAT_MAX are clipped to it); an array beyond that, such as
    0..255 in float32, is refused with an ImageError instead of being clipped to white."""
    if not isinstance(img, np.ndarray) or img.size == 0:
        raise ImageError(f"{name}: empty or not an image array")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ImageError(f"{name}: expected a gray, 3- or 4-channel image, got array of shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype.kind == "f":
        if not np.isfinite(img).all():
            raise ImageError(f"{name}: contains NaN or infinite values")
        lo, hi = float(img.min()), float(img.max())
        if lo < FLOAT_MIN or hi > FLOAT_MAX:  # e.g. 0..255 held in float32: clipping would give white
            hint = " (0..255 in a float array? divide by 255, or pass uint8)" if hi <= 256.0 else ""
            raise ImageError(f"{name}: float {img.dtype} pixels must be in [0, 1], got values {lo:.4g}..{hi:.4g}"
                             f"{hint}")
        img = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported pixel type {img.dtype}")
    if bgr:
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as H×W×3 RGB uint8."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return to_rgb_uint8(img, str(path))


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Writes an RGB uint8 image atomically (the format follows the suffix)."""
    path = Path(path)
    rgb = to_rgb_uint8(rgb, str(path), bgr=False)
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", rgb[:, :, ::-1].copy())
    except cv2.error:
        ok = False
    if not ok:
        raise ImageError(f"{path}: OpenCV cannot encode images with suffix '{path.suffix}'")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted naturally (2.png before 10.png)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: folder not found")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return sorted(files, key=natural_key)


def natural_key(path: Path):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_pairs(rainy_dir: str | Path, clean_dir: str | Path) -> list[tuple[Path, Path]]:
    """Pairs rainy/clean images by file stem; names without a partner are an error that lists them."""
    rainy, clean = _by_stem(rainy_dir), _by_stem(clean_dir)
    only_rainy = [rainy[k].name for k in sorted(set(rainy) - set(clean))]
    only_clean = [clean[k].name for k in sorted(set(clean) - set(rainy))]
    if only_rainy or only_clean:
        parts = []
        if only_rainy:
            parts.append(f"{len(only_rainy)} rainy image(s) without a clean partner in {clean_dir}: {_some(only_rainy)}")
        if only_clean:
            parts.append(f"{len(only_clean)} clean image(s) without a rainy partner in {rainy_dir}: {_some(only_clean)}")
        raise ImageError("; ".join(parts))
    return [(rainy[k], clean[k]) for k in sorted(rainy, key=lambda s: natural_key(Path(s)))]


def read_pairs(folder: str | Path, limit: int | None = None, progress_desc: str | None = None):
    """The paired folder ``FOLDER/rainy`` + ``FOLDER/clean`` (matched by file stem, natural order; the first `limit`)
    read as ``[(stem, rainy RGB uint8, clean RGB uint8), …]``: the one loader of paired folders (evaluation,
    training, export's validation pairs). ImageError naming the file for a missing subfolder, an unreadable image
    or a pair whose sizes differ."""
    folder = Path(folder)
    for sub in ("rainy", "clean"):
        if not (folder / sub).is_dir():
            raise ImageError(f"{folder}: expected a folder with rainy/ and clean/ subfolders ({sub}/ is missing)")
    pairs = list_pairs(folder / "rainy", folder / "clean")
    if limit:
        pairs = pairs[: int(limit)]
    if progress_desc is not None:
        from .progress import progress

        pairs = progress(pairs, desc=progress_desc, leave=False)
    out = []
    for r, c in pairs:
        rainy, clean = read_image(r), read_image(c)
        if rainy.shape != clean.shape:
            raise ImageError(f"{r.name} is {rainy.shape[1]}x{rainy.shape[0]} but its clean partner is "
                             f"{clean.shape[1]}x{clean.shape[0]}")
        out.append((r.stem, rainy, clean))
    return out


def _by_stem(folder: str | Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in files:
            raise ImageError(f"{folder}: two images share the name '{p.stem}' ({files[p.stem].name}, {p.name}); pairs are matched by name")
        files[p.stem] = p
    return files


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
