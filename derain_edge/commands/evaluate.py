"""derain-eval: PSNR-Y / SSIM-Y of a deraining model (or of the rainy inputs themselves) on a folder of pairs.

Conventions (those of the deraining literature, see ``derain_edge.metrics``): the model's output is rounded to
uint8 before scoring, exactly as a saved PNG would be; PSNR-Y and SSIM-Y on MATLAB's BT.601 Y channel; the
reported score is the mean over images of the per-image values.

Library use::

    from derain_edge.commands.evaluate import evaluate_pairs
    result = evaluate_pairs(lpnet.load_pretrained(), "rain100h/rainy", "rain100h/clean")
    result["psnr_y"], result["ssim_y"], result["per_image"]

Bad input (missing or empty folders, unpaired names, size mismatches, unreadable images, images smaller than the
SSIM window) raises ``ImageError`` naming the file; ``main`` turns it into ``error: …`` and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from derain_edge.files import sha256_file
from derain_edge.files import atomic_write_text
from derain_edge.imageio import ImageError, list_pairs, read_image, write_image
from derain_edge.metrics import psnr, rgb_to_y, ssim
from derain_edge.outputs import fail as _fail
from derain_edge.registry import get_spec, is_model, list_models, load_model

PROG = "derain-eval"
SSIM_WINDOW = 11


class ImageConversionWarning(UserWarning):
    """An input image was converted to RGB uint8 (grayscale, alpha, 16-bit or float source)."""


# ------------------------------------------------------------------------------------------------ evaluation
def conversions(path: str | Path) -> list[str]:
    """What ``read_image`` had to change to get RGB uint8 from this file (empty list: nothing)."""
    raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return []
    notes = []
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    if channels == 1:
        notes.append("grayscale replicated to RGB")
    elif channels == 4:
        notes.append("alpha channel dropped")
    if raw.dtype == np.uint16:
        notes.append("16-bit scaled to 8-bit")
    elif raw.dtype.kind == "f":
        notes.append("floating-point clipped to [0, 1] and scaled to 8-bit")
    return notes


def _size(img: np.ndarray) -> str:
    return f"{img.shape[1]}x{img.shape[0]}"


def _default_warn(message: str) -> None:
    warnings.warn(message, ImageConversionWarning, stacklevel=4)


def _read(path: Path, warn: Callable[[str], None]) -> np.ndarray:
    rgb = read_image(path)  # raises ImageError naming the file
    notes = conversions(path)
    if notes:
        warn(f"{path}: {', '.join(notes)}")
    return rgb


def evaluate_pairs(
    model_or_None,
    rainy_dir: str | Path,
    clean_dir: str | Path,
    save_dir: str | Path | None = None,
    *,
    warn: Callable[[str], None] | None = None,
    progress: bool = False,
    skip_bad: bool = False,
) -> dict:
    """Scores `model_or_None` (a torch module taking N×3×H×W RGB in [0, 1]; None = the rainy inputs themselves)
    on the pairs of `rainy_dir` / `clean_dir` (matched by file stem).

    Returns ``{"n", "psnr_y", "ssim_y", "input_psnr_y", "input_ssim_y", "per_image": [...]}`` where each per-image
    entry has ``name, width, height, psnr_y, ssim_y, input_psnr_y, input_ssim_y``. With `save_dir`, the derained
    images are written there as ``<stem>.png`` (atomically). Conversion notes go to `warn` (default:
    ``warnings.warn`` with ``ImageConversionWarning``); `progress` shows progress on stderr (a bar on a terminal,
    plain lines in a log). `model_or_None` may also be a plain callable, RGB uint8 → RGB uint8 (an artifact's
    runner). With `skip_bad`, an unreadable or mismatched pair is skipped and listed in ``result["skipped"]``.
    """
    warn = warn or _default_warn
    pairs = list_pairs(rainy_dir, clean_dir)
    if save_dir is not None:
        if model_or_None is None:
            raise ValueError("nothing to save without a model (the rainy inputs are scored as they are)")
        save_dir = Path(save_dir)
        for src in (rainy_dir, clean_dir):
            if save_dir.exists() and save_dir.resolve() == Path(src).resolve():
                raise ValueError(f"save folder {save_dir} is the input folder {src}; choose another one")
        if save_dir.exists() and not save_dir.is_dir():
            raise ValueError(f"save folder {save_dir} exists and is not a folder")
    was_training = False
    if model_or_None is not None:
        from torch import nn

        from derain_edge.infer import derain_rgb

        if isinstance(model_or_None, nn.Module):
            was_training = model_or_None.training
            model_or_None.eval()
            module = model_or_None
            run = lambda rgb: derain_rgb(module, rgb)  # noqa: E731
        else:
            run = model_or_None

    per_image, skipped = [], []
    iterator = pairs
    if progress:
        from derain_edge.progress import progress as bar

        iterator = bar(pairs, desc="evaluating", unit="img", leave=False, file=sys.stderr, dynamic_ncols=True)
    try:
        for rainy_path, clean_path in iterator:
            try:
                row = _score_pair(rainy_path, clean_path, None if model_or_None is None else run, warn, save_dir)
            except ImageError as e:
                if not skip_bad:
                    raise
                skipped.append({"name": rainy_path.name, "error": str(e)})
                continue
            per_image.append(row)
    finally:
        if progress:
            iterator.close()
        if was_training:
            model_or_None.train()
    if not per_image:
        raise ImageError(f"no pair of {rainy_dir} could be scored ({len(skipped)} skipped)")

    def mean(key):
        return float(np.mean([r[key] for r in per_image]))

    return {
        "n": len(per_image),
        "psnr_y": mean("psnr_y"), "ssim_y": mean("ssim_y"),
        "input_psnr_y": mean("input_psnr_y"), "input_ssim_y": mean("input_ssim_y"),
        "per_image": per_image, "skipped": skipped,
    }


def _score_pair(rainy_path: Path, clean_path: Path, run, warn, save_dir) -> dict:
    """One pair's scores (and its saved output); ImageError names the file for anything wrong with it."""
    rainy = _read(rainy_path, warn)
    clean = _read(clean_path, warn)
    if rainy.shape != clean.shape:
        raise ImageError(
            f"size mismatch: {rainy_path} is {_size(rainy)} but {clean_path} is {_size(clean)}"
        )
    if min(rainy.shape[:2]) < SSIM_WINDOW:
        raise ImageError(
            f"{rainy_path} and {clean_path} are {_size(rainy)}, smaller than the "
            f"{SSIM_WINDOW}x{SSIM_WINDOW} SSIM window"
        )
    y_clean = rgb_to_y(clean)
    y_rainy = rgb_to_y(rainy)
    in_psnr, in_ssim = psnr(y_rainy, y_clean), ssim(y_rainy, y_clean)
    if run is None:
        out_psnr, out_ssim = in_psnr, in_ssim
    else:
        try:
            derained = run(rainy)
        except (RuntimeError, MemoryError) as e:
            raise ImageError(f"{rainy_path}: the model failed on this {_size(rainy)} image: {e}") from e
        if derained.shape != rainy.shape:
            raise ImageError(
                f"{rainy_path}: the model returned {_size(derained)} for a {_size(rainy)} input"
            )
        y_out = rgb_to_y(derained)
        out_psnr, out_ssim = psnr(y_out, y_clean), ssim(y_out, y_clean)
        if save_dir is not None:
            write_image(save_dir / f"{rainy_path.stem}.png", derained)
    return {
        "name": rainy_path.name, "width": int(rainy.shape[1]), "height": int(rainy.shape[0]),
        "psnr_y": out_psnr, "ssim_y": out_ssim, "input_psnr_y": in_psnr, "input_ssim_y": in_ssim,
    }


# ----------------------------------------------------------------------------------------------------- CLI
def _fmt_db(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def format_table(result: dict) -> str:
    rows = [("name", "size", "PSNR-Y", "SSIM-Y", "input PSNR-Y")]
    for r in result["per_image"]:
        rows.append((r["name"], f"{r['width']}x{r['height']}", _fmt_db(r["psnr_y"]), f"{r['ssim_y']:.4f}",
                     _fmt_db(r["input_psnr_y"])))
    rows.append((f"mean ({result['n']})", "", _fmt_db(result["psnr_y"]), f"{result['ssim_y']:.4f}",
                 _fmt_db(result["input_psnr_y"])))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for k, row in enumerate(rows):
        if k == len(rows) - 1:
            lines.append("-" * (sum(widths) + 2 * 4))
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _json_safe(obj):
    """Strict JSON: an infinite PSNR (identical images) is written as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="PSNR-Y / SSIM-Y (MATLAB BT.601 conventions) of a deraining model on rainy/clean pairs "
                    "matched by file name.",
    )
    p.add_argument("--rainy", metavar="DIR", help="folder of rainy images (not with --suite)")
    p.add_argument("--clean", metavar="DIR", help="folder of clean images with the same names (not with --suite)")
    p.add_argument("--model", default=None, metavar="NAME|ARTIFACT",
                   help="model to evaluate (default: lpnet with its shipped weights): "
                        + "; ".join(f"{k} = {get_spec(k).description}" for k in list_models())
                        + "; or an exported artifact (.onnx, .tflite, a bundle folder …), run through runtime.Derainer")
    p.add_argument("--suite", action="store_true",
                   help="score heavy rain, light rain and dry frames in one table (dry: output vs its own input); "
                        "sets default to the test parts of runs/splits (made from ../shared/data when missing) "
                        "plus procedural dry scenes")
    p.add_argument("--heavy", action="append", default=[], metavar="DIR", help="--suite: heavy-rain pairs (rainy/, clean/); repeatable")
    p.add_argument("--light", action="append", default=[], metavar="DIR", help="--suite: light-rain pairs (rainy/, clean/); repeatable")
    p.add_argument("--dry", action="append", default=[], metavar="DIR",
                   help="--suite: folder of rain-free photos, or 'scenes' for procedural ones; repeatable")
    p.add_argument("--gate", action="store_true",
                   help="apply the rain gate after the model, as runtime.Derainer does by default (derain_edge.gate): "
                        "the output is kept where the model removed rain, the input elsewhere")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable or mismatched images, list them at the end, score the rest")
    p.add_argument("--weights", metavar="W", help="load these weights into the model instead of the shipped ones")
    p.add_argument("--json", metavar="FILE", help="write means, per-image scores and provenance as JSON")
    p.add_argument("--save", metavar="DIR", help="write the derained images here (<name>.png)")
    p.add_argument("--input-only", action="store_true",
                   help="score the rainy inputs themselves (the no-deraining baseline); no model")
    return p


def _check_destination(path: str) -> str | None:
    """The --json file's folder must exist or be creatable and be writable, checked *before* any scoring."""
    target = Path(path)
    if target.is_dir():
        return f"--json {path} is a folder; give a file name"
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write --json {path}: {folder} is not a writable folder"
    return None


def _derainer(model_name: str, weights, gate: bool = False):
    """(callable RGB uint8 → RGB uint8, model or engine, weights path) for a registry name or an artifact path;
    with `gate`, the rain gate follows the model."""
    run, model, path = _ungated(model_name, weights)
    if gate:
        from derain_edge.gate import apply_gate

        return (lambda rgb: apply_gate(rgb, run(rgb))), model, path
    return run, model, path


def _ungated(model_name: str, weights):
    if is_model(model_name):
        model, path = load_model(model_name, weights)
        from derain_edge.infer import derain_rgb

        return (lambda rgb: derain_rgb(model, rgb)), model, path
    if weights is not None:
        raise ValueError("--weights goes with a registry model (lpnet, anlcl), not with an artifact")
    if not Path(model_name).exists():
        raise ValueError(f"unknown model '{model_name}'; choose from: {', '.join(list_models())} (or give an exported artifact's path)")
    from runtime import Derainer

    engine = Derainer(model_name, gate=False)  # derain-eval adds the gate itself with --gate
    return engine.derain_rgb, engine, Path(model_name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [PROG, *argv])

    if args.json:
        problem = _check_destination(args.json)
        if problem:
            return _fail(problem)
    if args.suite:
        return _suite_main(args, command)
    if (args.heavy or args.light or args.dry):
        return _fail("--heavy, --light and --dry go with --suite")
    if not args.rainy or not args.clean:
        return _fail("give --rainy DIR and --clean DIR (pairs matched by name), or --suite")
    if args.input_only:
        for flag, value in (("--model", args.model), ("--weights", args.weights), ("--save", args.save)):
            if value is not None:
                return _fail(f"--input-only scores the rainy images without a model; drop {flag}")
        model, model_name, weights = None, None, None
    else:
        model_name = args.model or "lpnet"
        try:
            derain, model, weights = _derainer(model_name, args.weights, args.gate)
        except (ValueError, OSError, RuntimeError) as e:
            return _fail(str(e))
        if not is_model(model_name) or args.gate:
            model = derain

    def warn(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"warning: {message}", file=sys.stderr)

    try:
        result = evaluate_pairs(model, args.rainy, args.clean, args.save, warn=warn, progress=True, skip_bad=args.skip_bad)
    except (ImageError, ValueError, OSError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130

    if model is None:
        print(f"rainy inputs (no model) vs {args.clean}")
    else:
        print(f"model {model_name}, weights {weights}")
    print(format_table(result))
    print(f"PSNR-Y {_fmt_db(result['psnr_y'])} dB, SSIM-Y {result['ssim_y']:.4f} over {result['n']} images "
          f"(rainy input: {_fmt_db(result['input_psnr_y'])} dB, {result['input_ssim_y']:.4f})")
    _print_skipped(result.get("skipped", []))

    if args.json:
        record = {
            "psnr_y": result["psnr_y"], "ssim_y": result["ssim_y"], "n": result["n"],
            "input_psnr_y": result["input_psnr_y"], "input_ssim_y": result["input_ssim_y"],
            "model": model_name,
            "weights": str(weights) if weights is not None else None,
            "weights_sha256": sha256_file(weights) if weights is not None and Path(weights).is_file() else None,
            "rainy": str(args.rainy), "clean": str(args.clean),
            "save": str(args.save) if args.save else None,
            "command": command,
            "per_image": result["per_image"],
            "skipped": result.get("skipped", []),
        }
        try:
            atomic_write_text(args.json, json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n")
        except OSError as e:
            return _fail(f"cannot write {args.json}: {e}")
    return 0


def _print_skipped(skipped: list[dict]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} bad file(s) (--skip-bad):", file=sys.stderr)
        for item in skipped:
            print(f"  {item.get('set', '') + ': ' if item.get('set') else ''}{item['error']}", file=sys.stderr)


def _suite_main(args, command: str) -> int:
    from derain_edge.progress import progress
    from derain_edge.suite import SCENES, Suite, default_suite, evaluate_suite, format_suite

    for flag, value in (("--rainy", args.rainy), ("--clean", args.clean), ("--save", args.save)):
        if value is not None:
            return _fail(f"--suite scores its own sets; drop {flag} (use --heavy/--light/--dry)")
    if args.input_only:
        return _fail("--suite scores a model; --input-only is for one folder of pairs")
    try:
        suite = default_suite() if not (args.heavy or args.light or args.dry) else Suite(
            [Path(d) for d in args.heavy], [Path(d) for d in args.light], [d if d == SCENES else Path(d) for d in args.dry])
        for d in suite.heavy + suite.light:
            if not (d / "rainy").is_dir() or not (d / "clean").is_dir():
                return _fail(f"{d} needs rainy/ and clean/ subfolders")
        for d in suite.dry:
            if d != SCENES and not Path(d).is_dir():
                return _fail(f"--dry {d}: not a folder (or 'scenes')")
        model_name = args.model or "lpnet"
        derain, _, weights = _derainer(model_name, args.weights, args.gate)
        result = evaluate_suite(derain, suite, skip_bad=args.skip_bad, progress=progress)
    except (ImageError, ValueError, OSError, RuntimeError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"model {model_name}, weights {weights}" + (", rain gate on" if args.gate else ""))
    print(format_suite(result))
    _print_skipped(result["skipped"])
    if args.json:
        record = {"model": model_name, "weights": str(weights) if weights else None, "gate": args.gate,
                  "weights_sha256": sha256_file(weights) if weights is not None and Path(weights).is_file() else None,
                  "command": command, **result}
        try:
            atomic_write_text(args.json, json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n")
        except OSError as e:
            return _fail(f"cannot write {args.json}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
