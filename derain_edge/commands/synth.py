"""derain-synth: make paired rainy/clean datasets (and a contact sheet) from a folder of clean photos.

    derain-synth --clean DIR [--out DIR] [--n N] [--seed S] [--preset drizzle|light|moderate|heavy] [--scale auto|X]
                 [--contact-sheet PNG] [--reference [LABEL=]DIR ...]

Writes OUT/rainy/NAME.png and OUT/clean/NAME.png (same name, same size; the clean image is the 8-bit RGB
the rain was rendered over, so the pair matches exactly even for 16-bit, gray or RGBA inputs).  Every write
is atomic (temp file in the same folder, then os.replace), so an interrupted run never leaves half a PNG.
Pair i is rendered with np.random.default_rng([seed, image_index, variant]): re-running, or running with a
different --n, reproduces the same pairs.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from derain_edge.files import atomic_write_bytes
from derain_edge.progress import progress, write
from derain_edge.imageio import IMAGE_SUFFIXES, ImageError, list_images, to_rgb_uint8, write_image
from derain_edge.rain import PRESET_NAMES, RainConfig, render_rain

PROG = "derain-synth"
SHEET_WIDTH = 1400


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def _warn(msg: str) -> None:
    write(f"{PROG}: warning: {msg}", file=sys.stderr)


def read_rgb(path: Path) -> tuple[np.ndarray, str | None]:
    """Reads any image as 8-bit RGB; returns it and a note saying what was converted (None if nothing)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageError(f"{path}: file is empty")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # we report bad files ourselves
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if img is None or img.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    notes = []
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        notes.append("grayscale → RGB")
    elif img.ndim == 3 and img.shape[2] == 4:
        notes.append("alpha channel dropped")
    if img.dtype == np.uint16:
        notes.append("16-bit → 8-bit")
    elif img.dtype.kind == "f":
        notes.append("float → 8-bit")
    return to_rgb_uint8(img, str(path)), (", ".join(notes) or None)


def auto_scale(h: int, w: int) -> float:
    """Streak geometry is tuned for ~480×320 frames (Rain100H); bigger frames get proportionally bigger rain."""
    return max(1.0, min(h, w) / 320.0)


def _output_names(files: list[Path]) -> list[str]:
    """File stems, made unique when two inputs differ only by extension (a.png, a.jpg → a_png, a_jpg)."""
    stems = [p.stem for p in files]
    dup = {s for s in stems if stems.count(s) > 1}
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.stem in dup else p.stem for p in files]


def _render(rgb: np.ndarray, rng: np.random.Generator, cfg: RainConfig, scale: float | None) -> np.ndarray:
    h, w = rgb.shape[:2]
    cfg = cfg.replace(scale=auto_scale(h, w) if scale is None else scale)
    rainy = render_rain(rgb.astype(np.float32) / 255.0, rng, cfg)
    return np.round(rainy * 255.0).astype(np.uint8)


def _png(bgr: np.ndarray, drop: int) -> bytes:
    img = bgr if drop == 0 else ((bgr >> drop) << drop) | (1 << (drop - 1))
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise CliError("OpenCV could not encode the contact sheet as PNG")
    return buf.tobytes()


def _encode_png(rgb: np.ndarray, max_bytes: int | None = None) -> tuple[bytes, int, float]:
    """PNG bytes of an RGB image within max_bytes: first drops 1–3 low bits per channel (rain texture is noise-like
    and compresses badly; 5–7 bits per channel look the same in a README), then, if still too big, scales the
    image down until it fits.  Returns (bytes, bits dropped, scale)."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    for drop in range(4):
        data = _png(bgr, drop)
        if max_bytes is None or len(data) <= max_bytes:
            return data, drop, 1.0
    h, w = bgr.shape[:2]
    scale = 1.0
    for _ in range(12):
        scale *= max(0.5, min(0.95, 0.97 * (max_bytes / len(data)) ** 0.5))
        small = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        data = _png(np.ascontiguousarray(small), drop)
        if len(data) <= max_bytes:
            return data, drop, scale
    raise CliError(f"the contact sheet does not fit in {max_bytes / 1e6:.2f} MB even at {scale:.0%} size; "
                   "raise --sheet-max-mb or lower --sheet-rows")


# --------------------------------------------------------------------------------------------- contact sheet

def _tile(rgb: np.ndarray, w: int, h: int, label: str) -> np.ndarray:
    """Centre-crops to the tile's aspect ratio, resizes with area averaging and writes a label on a dark band."""
    ih, iw = rgb.shape[:2]
    if iw * h > ih * w:  # too wide: crop the sides
        cw = max(1, round(ih * w / h))
        x0 = (iw - cw) // 2
        rgb = rgb[:, x0:x0 + cw]
    else:
        ch = max(1, round(iw * h / w))
        y0 = (ih - ch) // 2
        rgb = rgb[y0:y0 + ch]
    interp = cv2.INTER_AREA if rgb.shape[1] > w else cv2.INTER_LINEAR
    tile = cv2.resize(rgb, (w, h), interpolation=interp)
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (tw, tht), base = cv2.getTextSize(label, font, fs, th)
    band = tht + base + 8
    tile[:band, : min(w, tw + 10)] = (tile[:band, : min(w, tw + 10)] * 0.35).astype(np.uint8)
    cv2.putText(tile, label, (5, band - base - 3), font, fs, (255, 255, 255), th, cv2.LINE_AA)
    return tile


def _parse_reference(spec: str) -> tuple[str, Path]:
    """'LABEL=DIR' or 'DIR' (then the label is parent/name of the folder)."""
    label, sep, rest = spec.partition("=")
    if sep and label and "/" not in label and "\\" not in label and not Path(spec).is_dir():
        path = Path(rest)
    else:
        path = Path(spec)
        label = "/".join(path.resolve().parts[-2:])
    return label, path


def _pick(n_items: int, k: int) -> list[int]:
    """k indices spread evenly over n_items (deterministic, so the sheet is reproducible)."""
    if n_items <= k:
        return list(range(n_items))
    return [int(i * n_items / k) for i in range(k)]


def _reference_tiles(label: str, files: list[Path], k: int) -> list[tuple[str, np.ndarray]]:
    """Up to k images spread over the folder, skipping unreadable ones and near-duplicates (the same frame
    saved twice, e.g. as PNG and JPEG), so each tile shows a different scene."""
    order = _pick(len(files), k)
    order += [i for i in range(len(files)) if i not in order]
    tiles, thumbs = [], []
    for j in order:
        if len(tiles) == k:
            break
        try:
            rgb = read_rgb(files[j])[0]
        except ImageError as e:
            _warn(f"skipping reference {e}")
            continue
        thumb = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if any(np.abs(thumb - t).mean() < 4.0 for t in thumbs):
            continue
        thumbs.append(thumb)
        tiles.append((j, f"{label}: {files[j].name}", rgb))
    return [(name, rgb) for _, name, rgb in sorted(tiles, key=lambda t: t[0])]


def contact_sheet(rows: list[tuple[str, np.ndarray, np.ndarray]], refs: list[list[tuple[str, np.ndarray]]],
                  title: str, width: int = SHEET_WIDTH) -> np.ndarray:
    """Grid with one row per clean image: [clean | synthetic | reference 1 | reference 2 ...]."""
    ncols = 2 + len(refs)
    gap = 4
    tw = (width - gap * (ncols - 1)) // ncols
    th = round(tw * 2 / 3)
    nrows = max([len(rows)] + [len(r) for r in refs])
    head = 28
    sheet = np.full((head + nrows * th + (nrows - 1) * gap, width, 3), 255, np.uint8)
    cv2.putText(sheet, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for r in range(nrows):
        y = head + r * (th + gap)
        cells = []
        if r < len(rows):
            name, clean, rainy = rows[r]
            cells += [_tile(clean, tw, th, f"clean: {name}"), _tile(rainy, tw, th, f"synthetic: {name}")]
        else:
            cells += [None, None]
        for ref in refs:
            cells.append(_tile(ref[r][1], tw, th, ref[r][0]) if r < len(ref) else None)
        for c, tile in enumerate(cells):
            if tile is not None:
                x = c * (tw + gap)
                sheet[y:y + th, x:x + tw] = tile
    return sheet


# ------------------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Render seeded synthetic rain (Rain100H-like by default) over clean photos: writes "
                    "OUT/rainy/NAME.png + OUT/clean/NAME.png pairs and/or a labelled contact sheet.")
    p.add_argument("--clean", required=True, type=Path,
                   help="folder of clean images (" + " ".join(IMAGE_SUFFIXES) + ")")
    p.add_argument("--out", type=Path, help="output folder; pairs go to OUT/rainy and OUT/clean")
    p.add_argument("--n", type=int, help="number of pairs (default: one per clean image; more cycles through "
                                         "the images with new rain, named NAME_rainK)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed ⇒ identical output")
    p.add_argument("--preset", choices=PRESET_NAMES, default="heavy", help="rain preset, drizzle → heavy (default heavy)")
    p.add_argument("--scale", default="auto",
                   help="streak geometry multiplier; 'auto' (default) = max(1, min(H, W) / 320) per image")
    p.add_argument("--contact-sheet", type=Path, metavar="PNG", help="write a labelled contact sheet here")
    p.add_argument("--reference", action="append", default=[], metavar="[LABEL=]DIR",
                   help="folder of real rainy images to show next to the synthetic ones (repeatable)")
    p.add_argument("--sheet-rows", type=int, default=4, help="rows in the contact sheet (default 4)")
    p.add_argument("--sheet-max-mb", type=float, default=1.5,
                   help="size budget of the contact sheet PNG; colour depth is reduced to fit (default 1.5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _scale_arg(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        v = float(text)
    except ValueError:
        raise CliError(f"--scale must be 'auto' or a number, got {text!r}") from None
    if not (math.isfinite(v) and 0.05 <= v <= 50):
        raise CliError(f"--scale must be between 0.05 and 50, got {v}")
    return v


def run(args: argparse.Namespace) -> int:
    if args.out is None and args.contact_sheet is None:
        raise CliError("nothing to do: give --out DIR and/or --contact-sheet PNG")
    if args.n is not None and args.n < 1:
        raise CliError(f"--n must be at least 1, got {args.n}")
    if args.sheet_rows < 1:
        raise CliError(f"--sheet-rows must be at least 1, got {args.sheet_rows}")
    if args.contact_sheet is not None and args.contact_sheet.suffix.lower() != ".png":
        raise CliError(f"--contact-sheet must be a .png file, got {args.contact_sheet}")
    scale = _scale_arg(args.scale)
    cfg = RainConfig.preset(args.preset)
    if not args.clean.exists():
        raise CliError(f"--clean {args.clean}: folder not found")
    if not args.clean.is_dir():
        raise CliError(f"--clean {args.clean}: not a folder")
    try:
        files = list_images(args.clean)
    except ImageError as e:
        raise CliError(f"--clean {e}") from None
    names = _output_names(files)
    refs_specs = [_parse_reference(s) for s in args.reference]
    for label, path in refs_specs:  # check before the long rendering loop, not after it
        if not path.is_dir():
            raise CliError(f"--reference {path}: folder not found")
        try:
            list_images(path)
        except ImageError as e:
            raise CliError(f"--reference: {e}") from None

    if args.sheet_max_mb <= 0:
        raise CliError(f"--sheet-max-mb must be positive, got {args.sheet_max_mb}")
    n_pairs = len(files) if args.n is None else args.n
    # with --out, the sheet shows pairs that were written (spread over them), never images left out by --n
    pool = min(n_pairs, len(files)) if args.out is not None else len(files)
    sheet_idx = set(_pick(pool, args.sheet_rows)) if args.contact_sheet else set()

    def jobs():
        """(image index, variant, write?) in order: the images cycled until n pairs are written (unreadable
        ones skipped), then sheet rows that were not among them."""
        done = set()
        if args.out is not None:
            i = 0
            while written < n_pairs and len(bad) < len(files) and (args.n is not None or i < len(files)):
                idx, variant = i % len(files), i // len(files)
                i += 1
                if idx not in bad:
                    done.add(idx)
                    yield idx, variant, True
        for idx in sorted(sheet_idx - done - set(bad)):
            yield idx, 0, False

    bad: dict[int, str] = {}
    sheet_rows: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
    written = 0
    total = n_pairs if args.out is not None else len(sheet_idx)
    bar = progress(jobs(), total=total, desc=PROG, unit="img", disable=args.quiet, file=sys.stderr)
    for idx, variant, write in bar:
        path = files[idx]
        try:
            clean, note = read_rgb(path)
        except ImageError as e:
            bad[idx] = str(e)
            _warn(f"skipping {e}")
            continue
        if note and variant == 0:
            _warn(f"{path.name}: converted ({note})")
        rng = np.random.default_rng([args.seed, idx, variant])
        rainy = _render(clean, rng, cfg, scale)
        name = names[idx] if variant == 0 else f"{names[idx]}_rain{variant}"
        if write:
            for sub, img in (("rainy", rainy), ("clean", clean)):
                write_image(args.out / sub / f"{name}.png", img)
            written += 1
        if variant == 0 and idx in sheet_idx:
            sheet_rows[idx] = (path.name, clean, rainy)
    bar.close()

    if args.out is not None:
        if written == 0:
            raise CliError(f"no pairs written: none of the {len(files)} image(s) in {args.clean} could be read")
        skipped = f", skipped {len(bad)} unreadable image(s)" if bad else ""
        print(f"{PROG}: wrote {written} pair(s) to {args.out}/rainy and {args.out}/clean{skipped}", file=sys.stderr)

    if args.contact_sheet is not None:
        rows = [sheet_rows[i] for i in sorted(sheet_rows)]
        if not rows:
            raise CliError(f"contact sheet: none of the chosen images in {args.clean} could be read")
        refs = []
        for label, path in refs_specs:
            refs.append(_reference_tiles(label, list_images(path), len(rows)))
        title = (f"derain-synth --preset {args.preset} --seed {args.seed}: clean | synthetic"
                 + "".join(f" | {label}" for label, _ in refs_specs))
        sheet = contact_sheet(rows, refs, title)
        data, dropped, scale = _encode_png(sheet, int(args.sheet_max_mb * 1e6))
        atomic_write_bytes(args.contact_sheet, data)
        fitted = []
        if dropped:
            fitted.append(f"{8 - dropped} bits/channel")
        if scale < 1.0:
            fitted.append(f"scaled to {scale:.0%}")
        how = f", {' and '.join(fitted)} to fit {args.sheet_max_mb} MB" if fitted else ""
        sh, sw = (round(sheet.shape[0] * scale), round(sheet.shape[1] * scale)) if scale < 1.0 else sheet.shape[:2]
        print(f"{PROG}: wrote contact sheet {args.contact_sheet} ({sw}×{sh}, {len(data) / 1e6:.2f} MB{how})",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CliError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ImageError as e:  # e.g. an output that cannot be encoded
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, permission denied, ...
        print(f"{PROG}: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
