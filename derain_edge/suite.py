"""`derain-eval --suite`: one model scored on heavy rain, light rain and dry frames, in one table.

A derainer runs in front of a detector all day, dry most of it, so a model is judged on three conditions, never on
heavy rain alone. Rainy pairs are scored against their clean image, beside the rainy input's own score; dry frames
(photos without rain) against *their own input*: a model that leaves a dry frame alone scores high, one that
blurs, darkens or shifts its colours scores low. The procedural dead-leaves scenes of `derain-demo` are a dry set
that needs no data.

Defaults come from the split of `scripts/rain100h_split.py` (runs/splits: the test parts, which no shipped weights
were trained or selected on); when that folder is missing but ../shared/data is present, the split is made there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .imageio import ImageError, list_images, read_image
from .metrics import psnr, rgb_to_y, ssim

Derain = Callable[[np.ndarray], np.ndarray]  # RGB uint8 H×W×3 in and out

SCENES = "scenes"  # the name of the procedural dry set
SCENE_COUNT, SCENE_SIZE = 8, (320, 480)


@dataclass
class Suite:
    """Sets to score: heavy/light are folders with rainy/ and clean/; dry are photo folders or SCENES."""

    heavy: list[Path] = field(default_factory=list)
    light: list[Path] = field(default_factory=list)
    dry: list[Path | str] = field(default_factory=list)

    def sets(self) -> list[tuple[str, str, Path | str]]:
        """(condition, label, source) in table order."""
        out = [("heavy", _label(p), p) for p in self.heavy] + [("light", _label(p), p) for p in self.light]
        return out + [("dry", SCENES if p == SCENES else _label(p), p) for p in self.dry]


def _label(p) -> str:
    p = Path(p)
    return f"{p.parent.name}/{p.name}" if p.name in ("test", "val", "train") else p.name


def default_suite(root: Path = Path("runs/splits"), data: Path | None = None) -> Suite:
    """The test parts of the shipped split; made from DATA (default ../shared/data) when ROOT does not exist yet.
    Without either, only the procedural dry scenes."""
    from .splits import make_split

    if not (root / "heavy" / "test").is_dir():
        data = data or Path("../shared/data")
        if (data / "rain100h-dev" / "rainy").is_dir():
            make_split(data, root)
    suite = Suite(dry=[])
    if (root / "heavy" / "test").is_dir():
        suite.heavy.append(root / "heavy" / "test")
    if (root / "light" / "test").is_dir():
        suite.light.append(root / "light" / "test")
    suite.dry += sorted(p for p in (root / "dry").glob("test-*") if p.is_dir())
    suite.dry.append(SCENES)
    return suite


def scenes() -> list[tuple[str, np.ndarray]]:
    from .scenes import dead_leaves

    return [(f"scene{i}", dead_leaves(*SCENE_SIZE, np.random.default_rng([7, i]))) for i in range(SCENE_COUNT)]


def _items(condition: str, source) -> list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]]:
    """(name, loader → (input, reference)) for every image of a set; loading is deferred so a bad file fails
    where it is scored (and --skip-bad can skip it)."""
    if condition == "dry":
        if source == SCENES:
            return [(name, lambda img=img: (img, img)) for name, img in scenes()]
        return [(p.name, lambda p=p: (read_image(p),) * 2) for p in list_images(source)]
    from .imageio import list_pairs

    return [(r.name, lambda r=r, c=c: (read_image(r), read_image(c))) for r, c in list_pairs(Path(source) / "rainy", Path(source) / "clean")]


def _scores(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a, b = rgb_to_y(pred), rgb_to_y(ref)
    return psnr(a, b), ssim(a, b)


def evaluate_suite(derain: Derain, suite: Suite, *, skip_bad: bool = False, progress=None) -> dict:
    """{"sets": [{condition, set, n, psnr_y, ssim_y, input_psnr_y, input_ssim_y, skipped, per_image}], "skipped": [...]}.
    Dry sets have no input score (the input is the reference). Per-set PSNR means cap an identical image at
    DRY_CAP dB so a set mean stays finite; per-image values stay exact (inf is written as null in JSON)."""
    results, skipped = [], []
    for condition, label, source in suite.sets():
        items = _items(condition, source)
        rows = []
        iterator = progress(items, desc=f"{condition} {label}", unit="img") if progress else items
        for name, load in iterator:
            try:
                inp, ref = load()
                if inp.shape != ref.shape:
                    raise ImageError(f"size mismatch: {name} rainy {inp.shape[1]}x{inp.shape[0]} vs clean {ref.shape[1]}x{ref.shape[0]}")
                out = derain(inp)
                if out.shape != inp.shape:
                    raise ImageError(f"{name}: the model returned {out.shape[1]}x{out.shape[0]} for a {inp.shape[1]}x{inp.shape[0]} input")
            except ImageError as e:
                if not skip_bad:
                    raise
                skipped.append({"set": label, "name": name, "error": str(e)})
                continue
            p, s = _scores(out, ref)
            row = {"name": name, "psnr_y": p, "ssim_y": s}
            if condition != "dry":
                row["input_psnr_y"], row["input_ssim_y"] = _scores(inp, ref)
            rows.append(row)
        if not rows:
            raise ImageError(f"no image of {source} could be scored")
        summary = {"condition": condition, "set": label, "source": str(source), "n": len(rows),
                   "psnr_y": _mean(r["psnr_y"] for r in rows), "ssim_y": _mean(r["ssim_y"] for r in rows),
                   "input_psnr_y": None, "input_ssim_y": None, "per_image": rows}
        if condition != "dry":
            summary["input_psnr_y"] = _mean(r["input_psnr_y"] for r in rows)
            summary["input_ssim_y"] = _mean(r["input_ssim_y"] for r in rows)
        results.append(summary)
    return {"sets": results, "skipped": skipped}


DRY_CAP = 60.0  # dB: an unchanged 8-bit image is "perfect"; 60 dB is below one grey level of error anywhere


def _mean(values) -> float:
    return float(np.mean([min(v, DRY_CAP) for v in values]))


def format_suite(result: dict) -> str:
    head = ("condition", "set", "n", "input PSNR-Y", "input SSIM-Y", "PSNR-Y", "SSIM-Y", "change dB")
    rows = [head]
    for r in result["sets"]:
        dry = r["condition"] == "dry"
        rows.append((r["condition"], r["set"], str(r["n"]),
                     "(= input)" if dry else f"{r['input_psnr_y']:.2f}", "" if dry else f"{r['input_ssim_y']:.4f}",
                     f"{r['psnr_y']:.2f}", f"{r['ssim_y']:.4f}",
                     "" if dry else f"{r['psnr_y'] - r['input_psnr_y']:+.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    note = "dry frames: output scored against its own input (higher = left alone); rainy sets: against the clean image"
    return "\n".join(lines + [note])


