"""Cost of non-local sampling per ANLCL-lite training step, against random sampling, in the same run.

NLCL's released code searched similar patches with Python loops ("a day and a half for 1400 images"). Here the search
is batched (unfold + cdist + top-k, chunked). This times one full unsupervised training step (generator losses and
backward, optimiser steps, discriminator step, momentum update) with
  full non-local:  layer-contrast positives/negatives by block matching + location-contrast hardest negatives
  random:          the same numbers of positives/negatives drawn uniformly
alternating the two on the same models and crops, and reports medians. Target: ≤ 15 % overhead.

    python benchmarks/nonlocal_sampling.py [--patch 128] [--batch 1] [--steps 8] [--device auto] [--json FILE]
    python benchmarks/nonlocal_sampling.py --smoke    # seconds: 64×64 synthetic crops, ndf 16, 1 step, JSON in a temp dir

Prints a table and, as its last line, `overhead: <percent>%`.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anlcl_lite import distributed  # noqa: E402
from anlcl_lite.sampling import StepRandom, gather_locations, nearest, patch_descriptors  # noqa: E402
from anlcl_lite.train import AnlclTrainConfig, build, discriminator_gradients, generator_gradients  # noqa: E402
from derain_edge.files import atomic_write_text  # noqa: E402

REALRAIN = ROOT.parent / "shared" / "data" / "realrain"


def crops(n: int, patch: int, seed: int, real: bool = True) -> torch.Tensor:
    """Real rainy crops when ../shared is present (and `real`), else smooth random scenes with bright streaks."""
    rng = np.random.default_rng(seed)
    out = []
    files = sorted(REALRAIN.glob("*.png")) if real and REALRAIN.is_dir() else []
    for i in range(n):
        if files:
            from derain_edge.imageio import read_image

            img = read_image(files[i % len(files)])
            y, x = rng.integers(img.shape[0] - patch), rng.integers(img.shape[1] - patch)
            out.append(img[y : y + patch, x : x + patch].astype(np.float32) / 255)
        else:
            base = np.cumsum(rng.normal(0, 0.02, (patch, patch, 3)), axis=0) % 1.0
            base[rng.random((patch, patch)) > 0.98] = 1.0
            out.append(base.astype(np.float32))
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy())


def set_mode(models, mode: str) -> None:
    models.objective.layer.sampling = "nonlocal" if mode == "non-local" else "random"
    models.objective.location.negatives = "most" if mode == "non-local" else "random"


def one_step(models, opts, rainy, clean, step, batch, device) -> float:
    world = distributed.World()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    rand = StepRandom(0, step, batch, device=device)
    _, _, _, cache = generator_gradients(models, rainy, clean, rand, world, scaler, False)
    opts["g"].step()
    opts["d"].zero_grad(set_to_none=True)
    discriminator_gradients(models, rainy, clean, cache, world, scaler, False)
    opts["d"].step()
    models.objective.after_step(models)  # the momentum update of the layer-contrast queries
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def search_only(models, rainy, device) -> float:
    """Seconds of just the block-matching searches one step performs (layer contrast, B and R, every layer)."""
    lc = models.objective.layer
    with torch.no_grad():
        b, r = models.g_b(rainy), models.g_r(rainy)
        sizes = [f.shape[-2:] for f in models.d.features(b, lc.layers)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for h, w in sizes:
        k = min(max(lc.n_pos, lc.n_neg), h * w - (2 * lc.radius + 1) ** 2)
        q = StepRandom(0, 0, rainy.shape[0], device=device).choice(h * w, min(lc.n_query, h * w))
        for img in (b, r):
            desc = patch_descriptors(img, (h, w))
            nearest(gather_locations(desc, q), desc, k, q_idx=q, width=w, radius=lc.radius)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=8, help="timed steps per mode (after 2 warm-up steps each)")
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: stable timings on a shared CPU)")
    p.add_argument("--json", default=None, help="default: runs/benchmarks/nonlocal_sampling.json (with --smoke: a temp dir)")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long run on tiny sizes to check the script works (synthetic crops; numbers mean nothing)")
    args = p.parse_args(argv)
    if args.smoke:
        from derain_edge.smoke import scratch_dir

        args.patch, args.batch, args.steps, args.ndf = 64, 1, 1, 16
        args.json = args.json or str(scratch_dir() / "nonlocal_sampling.json")
    args.json = args.json or str(ROOT / "runs" / "benchmarks" / "nonlocal_sampling.json")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    cfg = AnlclTrainConfig(out="unused", ndf=args.ndf, patch=args.patch, batch=args.batch)
    models, opts = build(cfg, device)
    models.train()
    real = not args.smoke
    rainy, clean = crops(args.batch, args.patch, 0, real).to(device), crops(args.batch, args.patch, 1, real).to(device)
    modes = ("non-local", "random")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(args.steps + 2):
        for mode in (modes if i % 2 == 0 else modes[::-1]):  # alternate the order: drift hits both alike
            set_mode(models, mode)
            dt = one_step(models, opts, rainy, clean, i, args.batch, device)
            if i >= 2:
                times[mode].append(dt)
    search = statistics.median(search_only(models, rainy, device) for _ in range(1 if args.smoke else 5))
    med = {m: statistics.median(v) for m, v in times.items()}
    overhead = 100.0 * (med["non-local"] / med["random"] - 1.0)
    print(f"ANLCL-lite training step, {args.batch}×3×{args.patch}×{args.patch}, PatchGAN ndf {args.ndf}, "
          f"{device} ({torch.get_num_threads()} thread(s)), median of {args.steps} steps per mode")
    print(f"{'sampling':<12}{'s/step':>10}{'min':>10}{'max':>10}")
    for m in modes:
        print(f"{m:<12}{med[m]:>10.4f}{min(times[m]):>10.4f}{max(times[m]):>10.4f}")
    print(f"block-matching searches alone: {search:.4f} s per step")
    record = {"device": str(device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "patch": args.patch, "batch": args.batch, "ndf": args.ndf, "steps": args.steps,
              "seconds_per_step": med, "all_seconds": times, "search_seconds": search, "overhead_percent": overhead,
              "torch": torch.__version__}
    atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")
    print(f"JSON: {args.json}")
    print(f"overhead: {overhead:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
