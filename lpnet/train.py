"""Supervised LPNet training (`derain-train lpnet`): the paper's recipe with resumable, atomic checkpoints.

Recipe (Fu et al. 2019, Sec. IV): Adam, learning rate 1e-3, batch 10, random 80×80 crops, loss of `losses.py`.
We decay the learning rate with a cosine to 1e-5 over the run, which the short CPU budgets here need.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from derain_edge.progress import progress

from derain_edge.checkpoint import load_checkpoint, save_checkpoint
from derain_edge.curves import plot_training_curve
from derain_edge.files import atomic_write_text
from derain_edge.imageio import list_images, read_image, read_pairs
from derain_edge.infer import derain_rgb
from derain_edge.metrics import psnr_y

from .data import PatchSampler, load_clean, load_pairs
from .losses import lpnet_loss
from .model import LPNet
from .weights import save_weights

log = logging.getLogger(__name__)

LAST = "last.safetensors"  # full training state, for resuming
BEST = "best.safetensors"  # weights only, best validation PSNR-Y


@dataclass
class TrainConfig:
    out: str
    pairs: list[str] = field(default_factory=list)
    clean: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)      # paired folders (rainy/, clean/): heavy and light validation
    val_dry: list[str] = field(default_factory=list)  # folders of rain-free photos: scored output vs input
    iters: int = 20000
    batch: int = 10
    patch: int = 80
    lr: float = 1e-3
    min_lr: float = 1e-5
    seed: int = 0
    synthetic_fraction: float = 0.5
    dry_fraction: float = 0.0
    presets: list[str] = field(default_factory=lambda: ["heavy"])
    val_every: int = 500
    ckpt_every: int = 100
    init: str | None = None  # weights to start from (fine-tuning)
    device: str = "auto"
    amp: bool = False

    # fields that change which batches a run sees; a resumed run must keep them
    DATA_FIELDS = ("pairs", "clean", "batch", "patch", "seed", "synthetic_fraction", "dry_fraction", "presets", "lr", "min_lr", "init")
    FIELD_DEFAULTS = {"dry_fraction": 0.0, "presets": ["heavy"]}  # what a checkpoint from before these fields meant

# A dry frame returned unchanged scores infinite PSNR; selection caps it so that one condition cannot outvote the others.
DRY_PSNR_CAP = 45.0


def learning_rate(cfg: TrainConfig, step: int) -> float:
    t = min(step / max(cfg.iters, 1), 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but PyTorch sees no CUDA GPU")
    return torch.device(name)


def validate(model: LPNet, sets: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    """Mean PSNR-Y per validation set over full images, output quantized to 8 bits as a saved result would be.
    A dry set's pairs are (photo, photo): output scored against its own input, capped at DRY_PSNR_CAP.
    "score", the selection criterion, is the mean over the sets: heavy rain alone never picks the checkpoint."""
    was_training = model.training
    model.eval()
    out = {}
    for name, pairs in sets.items():
        scores = [psnr_y(derain_rgb(model, rainy), clean) for rainy, clean in pairs]
        out[name] = float(np.mean(np.minimum(scores, DRY_PSNR_CAP)))
    model.train(was_training)
    out["score"] = float(np.mean(list(out.values())))
    return out


def load_validation(cfg: TrainConfig) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    sets = {}
    for folder in cfg.val:
        sets[f"{Path(folder).parent.name}/{Path(folder).name}" if Path(folder).name in ("val", "test") else Path(folder).name] = [
            (rainy, clean) for _, rainy, clean in read_pairs(folder)]
    for folder in cfg.val_dry:
        sets[f"dry {Path(folder).name}"] = [(img, img) for img in (read_image(p) for p in list_images(folder))]
    return sets


def _check_resume(cfg: TrainConfig, stored: dict) -> None:
    def was(k):
        return stored.get(k, TrainConfig.FIELD_DEFAULTS.get(k))

    diffs = [f"{k}: checkpoint {was(k)!r} vs now {getattr(cfg, k)!r}" for k in TrainConfig.DATA_FIELDS if was(k) != getattr(cfg, k)]
    if diffs:
        raise ValueError(
            f"{cfg.out} holds a run with different settings ({'; '.join(diffs)}); "
            "resume with the same settings or choose another --out"
        )


def train(cfg: TrainConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = LPNet().to(device)
    if cfg.init:
        from .weights import load_weights

        load_weights(model, cfg.init)
    channels_last = device.type == "cpu"  # ~25% faster on CPU for these thin convolutions
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: dict = {"loss": [], "val_psnr_y": [], "best": None}
    step = 0
    if (out / LAST).exists():
        meta = load_checkpoint(out / LAST, {"model": model}, {"adam": opt})
        _check_resume(cfg, meta["config"])
        step, history = meta["step"], meta["history"]
        log.info("resuming %s from iteration %d", out / LAST, step)

    pairs = [p for folder in cfg.pairs for p in load_pairs(folder, cfg.patch)]
    clean = [c for folder in cfg.clean for c in load_clean(folder, cfg.patch)]
    sampler = PatchSampler(pairs, clean, cfg.patch, cfg.batch, cfg.seed, cfg.synthetic_fraction, cfg.dry_fraction, tuple(cfg.presets))
    val_sets = load_validation(cfg)
    history["mix"] = sampler.mix
    mix = sampler.mix
    log.info("%d real pairs, %d clean photos; batch mix: real %.0f %%, rendered %.0f %% (%s), dry %.0f %%; validation %s; device %s",
             len(pairs), len(clean), 100 * mix["real"], 100 * mix["rendered"], "/".join(mix["presets"]), 100 * mix["dry"],
             ", ".join(f"{k} ({len(v)})" for k, v in val_sets.items()) or "none", device)

    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    config_json = dataclasses.asdict(cfg)

    def checkpoint():
        save_checkpoint(out / LAST, {"model": model}, {"adam": opt}, {"step": step, "config": config_json, "history": history})
        atomic_write_text(out / "history.json", json.dumps(history, indent=1))
        plot_training_curve(history, out / "curve.png", title=f"LPNet training ({out.name})")

    model.train()
    running, count = 0.0, 0
    bar = progress(total=cfg.iters, initial=step, desc="LPNet", unit="it", dynamic_ncols=True)
    t_last = time.time()
    while step < cfg.iters:
        rainy, clean_b = sampler.batch(step)
        rainy, clean_b = rainy.to(device), clean_b.to(device)
        if channels_last:
            rainy, clean_b = rainy.contiguous(memory_format=torch.channels_last), clean_b.contiguous(memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = lpnet_loss(model, rainy, clean_b)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {step}; last good checkpoint: {out / LAST}")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        running, count = running + loss.item(), count + 1
        bar.update(1)
        if step % 50 == 0 or step == cfg.iters:
            history["loss"].append([step, running / count])
            bar.set_postfix(loss=f"{running / count:.4f}", lr=f"{learning_rate(cfg, step):.1e}")
            running, count = 0.0, 0
        if val_sets and (step % cfg.val_every == 0 or step == cfg.iters):
            scores = validate(model, val_sets)
            score = scores["score"]
            history["val_psnr_y"].append([step, score])
            history.setdefault("val_sets", []).append([step, scores])
            if history["best"] is None or score > history["best"][1]:
                history["best"] = [step, score]
                save_weights(model, out / BEST, {"step": step, "val_psnr_y": score, "val": cfg.val + cfg.val_dry,
                                                 "val_sets": {k: round(v, 3) for k, v in scores.items()}})
            per_set = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "score")
            bar.write(f"iteration {step}: validation PSNR-Y {per_set}; mean {score:.2f} dB (best {history['best'][1]:.2f} dB at {history['best'][0]})")
        if step % cfg.ckpt_every == 0 or step == cfg.iters or time.time() - t_last > 300:
            checkpoint()
            t_last = time.time()
    bar.close()
    checkpoint()
    save_weights(model, out / "final.safetensors", {"step": step})
    return history
