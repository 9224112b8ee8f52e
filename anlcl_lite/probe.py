"""The probe: labeled images that are never used for gradients, scored every N steps while ANLCL-lite trains, so that
what the unsupervised stage does to the image branch is visible while it happens (issue 13 §1).

* paired sets (folders with rainy/ and clean/): PSNR-Y / SSIM-Y of G_B(rainy) against clean (MATLAB BT.601, as
  `derain-eval`), the rainy input's own score once, and how much of the true rain O − C the rain branch holds:
  rain_in_r = ⟨G_R(O), O − C⟩ / ‖O − C‖² (1: R is exactly the rain; 0: R is unrelated to it; decomposition
  objectives only);
* dry sets (photo folders without rain): G_B(photo) scored against the photo itself (higher = left alone).

Use the *val* parts of the split (runs/splits/{heavy,light}/val, runs/splits/dry/val) for choices; test parts are for
the final table only. Images are read once; `max_side` downscales them (area) to keep a CPU probe cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from derain_edge.imageio import list_images, read_image, read_pairs
from derain_edge.infer import derain_rgb
from derain_edge.metrics import psnr_y, ssim_y

DRY_CAP = 60.0  # dB, as derain_edge.suite: an identical 8-bit image would be infinite


def _label(folder: Path) -> str:
    folder = Path(folder)
    name = f"{folder.parent.name}-{folder.name}" if folder.name in ("val", "test", "train") else folder.name
    return name.replace("/", "-").replace(" ", "_")


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    if max_side <= 0 or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    return cv2.resize(img, (max(2, round(img.shape[1] * s)), max(2, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)


@dataclass
class ProbeSet:
    name: str          # column prefix, e.g. "heavy-val"
    dry: bool
    inputs: list[np.ndarray]
    refs: list[np.ndarray]
    input_psnr: float | None = None
    input_ssim: float | None = None


class Probe:
    """`Probe(paired=[dirs], dry=[dirs])(g_b, g_r)` → {"probe/<set>/psnr": …, "probe/<set>/ssim": …, …}."""

    def __init__(self, paired=(), dry=(), max_side: int = 0):
        self.sets: list[ProbeSet] = []
        for folder in paired:
            folder = Path(folder)
            pairs = read_pairs(folder)
            if not pairs:
                raise ValueError(f"probe folder {folder} holds no rainy/ + clean/ pairs")
            ins = [_shrink(rainy, max_side) for _, rainy, _ in pairs]
            refs = [_shrink(clean, max_side) for _, _, clean in pairs]
            s = ProbeSet(_label(folder), False, ins, refs)
            s.input_psnr = float(np.mean([psnr_y(i, r) for i, r in zip(ins, refs)]))
            s.input_ssim = float(np.mean([ssim_y(i, r) for i, r in zip(ins, refs)]))
            self.sets.append(s)
        for folder in dry:
            images = [_shrink(read_image(p), max_side) for p in list_images(folder)]
            if not images:
                raise ValueError(f"probe dry folder {folder} holds no images")
            name = _label(Path(folder))
            self.sets.append(ProbeSet(name if name.startswith("dry") else "dry-" + name, True, images, images))
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError(f"probe sets need distinct folder names, got {names}")

    def __bool__(self) -> bool:
        return bool(self.sets)

    def inputs(self) -> dict[str, float]:
        """The rainy inputs' own scores (the 'do nothing' line on the curve)."""
        out = {}
        for s in self.sets:
            if not s.dry:
                out[f"probe/{s.name}/input_psnr"] = round(s.input_psnr, 4)
                out[f"probe/{s.name}/input_ssim"] = round(s.input_ssim, 5)
        return out

    @torch.no_grad()
    def __call__(self, g_b: torch.nn.Module, g_r: torch.nn.Module | None = None) -> dict[str, float]:
        modes = [(m, m.training) for m in (g_b, g_r) if m is not None]
        for m, _ in modes:
            m.eval()
        try:
            out: dict[str, float] = {}
            for s in self.sets:
                ps, ss, num, den = [], [], 0.0, 0.0
                for inp, ref in zip(s.inputs, s.refs):
                    pred = derain_rgb(g_b, inp)
                    ps.append(min(psnr_y(pred, ref), DRY_CAP))
                    ss.append(ssim_y(pred, ref))
                    if g_r is not None and not s.dry:
                        device = next(g_r.parameters()).device
                        o = torch.from_numpy(inp).permute(2, 0, 1)[None].float().div(255).to(device)
                        rain = o - torch.from_numpy(ref).permute(2, 0, 1)[None].float().div(255).to(device)
                        r = g_r(o).float()
                        num += float((r * rain).sum())
                        den += float((rain * rain).sum())
                out[f"probe/{s.name}/psnr"] = round(float(np.mean(ps)), 4)
                out[f"probe/{s.name}/ssim"] = round(float(np.mean(ss)), 5)
                if den > 0:
                    out[f"probe/{s.name}/rain_in_r"] = round(num / den, 4)
            return out
        finally:
            for m, was in modes:
                m.train(was)


def load_g_b(path: str | Path) -> torch.nn.Module:
    """G_B from a weights file (final/stage1/probe snapshots) or from a training checkpoint (last.safetensors)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .weights import FORMAT, load_weights

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") == FORMAT:
        return load_weights(path)[0]
    import json

    from .generator import GeneratorConfig, LightGenerator

    cfg = json.loads(header.get("meta", "{}"))["config"]
    g_b = LightGenerator(GeneratorConfig(cfg["width"], cfg["blocks"], cfg["down"], cfg["norm"]), "image")
    g_b.load_state_dict({k[len("models.g_b."):]: v for k, v in load_file(str(path)).items() if k.startswith("models.g_b.")})
    return g_b


def save_branches(checkpoint: str | Path, out: str | Path) -> Path:
    """G_B and G_R (and G_O) of a training checkpoint, with its header, in a few hundred kB: `--init-from` takes it."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from derain_edge.files import atomic_path

    with safe_open(str(checkpoint), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") != "derain-edge/checkpoint":
        raise ValueError(f"{checkpoint} is not a training checkpoint")
    keep = ("models.g_b.", "models.g_r.", "models.g_o.")
    tensors = {k: v for k, v in load_file(str(checkpoint)).items() if k.startswith(keep)}
    import json

    meta = json.loads(header.get("meta", "{}"))
    slim = {"format": header["format"], "meta": json.dumps({"step": meta.get("step", 0), "config": meta.get("config"),
                                                            "branches_of": str(checkpoint)})}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=slim)
    return Path(out)


def main(argv=None) -> int:
    """python -m anlcl_lite.probe WEIGHTS_OR_CKPT [--save-gb OUT] --probe DIR … --probe-dry DIR …"""
    import argparse
    import json

    from .weights import save_weights

    p = argparse.ArgumentParser(prog="python -m anlcl_lite.probe", description=main.__doc__)
    p.add_argument("weights")
    p.add_argument("--probe", action="append", default=[])
    p.add_argument("--probe-dry", action="append", default=[])
    p.add_argument("--max-side", type=int, default=0)
    p.add_argument("--save-gb", metavar="OUT", help="also write G_B as a weights file (e.g. the init of a checkpoint)")
    p.add_argument("--save-branches", metavar="OUT", help="also write G_B and G_R of a training checkpoint as a small "
                   "checkpoint that --init-from accepts (no optimiser or discriminator state)")
    args = p.parse_args(argv)
    if args.save_branches:
        save_branches(args.weights, args.save_branches)
    g_b = load_g_b(args.weights)
    if args.save_gb:
        save_weights(g_b, args.save_gb, {"from": str(args.weights)})
    probe = Probe(args.probe, args.probe_dry, args.max_side)
    print(json.dumps({**probe.inputs(), **probe(g_b)}, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
