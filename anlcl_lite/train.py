"""`derain-train anlcl`: two-stage training of ANLCL-lite without clean ground truth for the rainy images.

Stage 1 (`init_iters`): both generators supervised on rendered pairs: L1(G_B(O), C) plus L1(G_R(O), O − C) for the
decomposition objectives (anlcl, nlcl) or L1(G_O(C), O) for the translation ones (dcdgan, cclgan).
Stage 2 (`iters`): the chosen objective (objective.py, dcdgan.py, cclgan.py) on real rainy crops and unpaired clean
crops. Adam (lr 2e-4, β = (0.5, 0.999)) for G (both generators + contrast heads) and D, as CycleGAN/NLCL.

Every batch and every random draw is a function of (seed, step), checkpoints are atomic and hold everything
(weights, optimisers, momentum encoder, scalars), so a killed run resumes exactly. CUDA with AMP when available,
data-parallel with torchrun (distributed.py). Outputs in --out: last.safetensors (resume state), stage1.safetensors
and final.safetensors (G_B weights), scalars.csv, samples/step_*.png (O | B | R grids).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from derain_edge.progress import progress as _progress

from derain_edge.checkpoint import load_checkpoint, save_checkpoint
from derain_edge.files import atomic_write_text
from derain_edge.imageio import write_image
from derain_edge.pictures import grid, label

from . import distributed
from .data import Crops, load_folders
from .discriminator import PatchDiscriminator
from .generator import GeneratorConfig, LightGenerator
from .objective import LossConfig
from .objectives import build_objective
from .sampling import StepRandom
from .weights import save_weights

log = logging.getLogger(__name__)

LAST = "last.safetensors"
STAGE1 = "stage1.safetensors"
FINAL = "final.safetensors"


@dataclass
class AnlclTrainConfig:
    out: str
    rainy: list[str] = field(default_factory=list)
    clean: list[str] = field(default_factory=list)
    init_iters: int = 1000
    iters: int = 5000
    batch: int = 4
    patch: int = 128
    lr: float = 2e-4
    init_lr: float = 1e-3
    seed: int = 0
    width: int = 24
    blocks: int = 4
    down: bool = False
    norm: str = "instance"
    ndf: int = 64
    loss: dict = field(default_factory=dict)  # LossConfig fields (objective, switches, weights, sampling …)
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 100
    device: str = "auto"
    amp: bool = False
    init_from: str | None = None  # start both branches from this training checkpoint (e.g. another run's stage 1)
    # stage 1 data engine (lpnet.data.PatchSampler): rain of these RainConfig presets plus dry pairs; None = heavy only
    init_presets: list[str] | None = None
    init_dry: float = 0.0
    # the probe: labeled sets scored every probe_every steps, never used for gradients (probe.py)
    probe: list[str] = field(default_factory=list)      # folders with rainy/ and clean/
    probe_dry: list[str] = field(default_factory=list)  # photo folders, output scored against input
    probe_every: int = 0
    probe_max_side: int = 0                             # downscale probe images (0: full size)
    # stage 2: replay of the stage-1 loss on rendered pairs (same clean domain and engine, never a pair of a rainy
    # training image) with this weight, against forgetting the rain model; 0 = off
    replay: float = 0.0

    # settings a resumed run must keep (they change what the run computes)
    FIXED = ("rainy", "clean", "init_iters", "batch", "patch", "lr", "init_lr", "seed", "width", "blocks", "down",
             "norm", "ndf", "loss", "init_from", "init_presets", "init_dry", "replay")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but PyTorch sees no CUDA GPU")
    return torch.device(name)


class Models(nn.Module):
    """Everything trainable in one module (device moves, checkpoints)."""

    def __init__(self, cfg: AnlclTrainConfig):
        super().__init__()
        self.loss_cfg = LossConfig.from_dict({**LossConfig().to_dict(), **cfg.loss})
        gcfg = GeneratorConfig(cfg.width, cfg.blocks, cfg.down, cfg.norm)
        self.g_b = LightGenerator(gcfg, "image")  # rainy → clean: the network that ships
        if self.loss_cfg.translation:
            self.g_o = LightGenerator(gcfg, "image")  # clean → rainy (a residual net like G_B)
        else:
            self.g_r = LightGenerator(gcfg, "rain")   # rainy → rain layer R
        self.d = PatchDiscriminator(cfg.ndf)  # clean domain
        if self.loss_cfg.translation:
            self.d_o = PatchDiscriminator(cfg.ndf)  # rainy domain
        self.objective = build_objective(self.loss_cfg, self)

    @property
    def second(self) -> LightGenerator:
        """G_R (decomposition objectives) or G_O (translation objectives)."""
        return self.g_o if self.loss_cfg.translation else self.g_r

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.g_b.parameters()) + list(self.second.parameters()) + self.objective.generator_parameters()

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.d.parameters()) + (list(self.d_o.parameters()) if self.loss_cfg.translation else [])

    def discriminators(self) -> list[nn.Module]:
        return [self.d, self.d_o] if self.loss_cfg.translation else [self.d]


def build(cfg: AnlclTrainConfig, device: torch.device) -> tuple[Models, dict[str, torch.optim.Optimizer]]:
    torch.manual_seed(cfg.seed)
    models = Models(cfg).to(device)
    opts = {
        "init": torch.optim.Adam(list(models.g_b.parameters()) + list(models.second.parameters()), lr=cfg.init_lr),
        "g": torch.optim.Adam(models.generator_parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
        "d": torch.optim.Adam(models.discriminator_parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
    }
    return models, opts


def init_gradients(models: Models, rainy: torch.Tensor, clean: torch.Tensor, world: distributed.World, scaler, amp: bool):
    """Stage 1: both generators supervised on rendered pairs; gradients left in .grad (averaged over processes)."""
    with torch.autocast(rainy.device.type, enabled=amp):
        b = models.g_b(rainy)
        if models.loss_cfg.translation:
            fake_o = models.g_o(clean)
            loss = F.l1_loss(b.float(), clean) + F.l1_loss(fake_o.float(), rainy)
            pictures = {"O": rainy, "B = G_B(O)": b, "C": clean, "G_O(C)": fake_o}
        else:
            r = models.g_r(rainy)
            loss = F.l1_loss(b.float(), clean) + F.l1_loss(r.float(), rainy - clean)
            pictures = {"O": rainy, "B": b, "|R| x3": r.abs() * 3}
    scaler.scale(loss).backward()
    distributed.average_gradients(list(models.g_b.parameters()) + list(models.second.parameters()), world)
    return loss.detach(), {"init_l1": loss.detach()}, {k: v.detach() for k, v in pictures.items()}


REPLAY_STEPS = 10_000_000  # stage-2 replay draws rendered pairs from step indices no stage 1 uses


def replay_gradients(models: Models, rainy: torch.Tensor, clean: torch.Tensor, weight: float, scaler, amp: bool):
    """Stage 2 replay: weight·(L1(G_B(O), C) + L1(G_R(O), O − C)) on rendered pairs, backward only (the caller's
    generator step averages the summed gradients). Returns the unweighted loss."""
    if models.loss_cfg.translation:
        raise ValueError("--replay is for the decomposition objectives anlcl/nlcl")
    with torch.autocast(rainy.device.type, enabled=amp):
        loss = F.l1_loss(models.g_b(rainy).float(), clean) + F.l1_loss(models.g_r(rainy).float(), rainy - clean)
    scaler.scale(weight * loss).backward()
    return loss.detach()


def generator_gradients(models: Models, rainy: torch.Tensor, clean: torch.Tensor, rand: StepRandom,
                        world: distributed.World, scaler, amp: bool):
    """Stage 2, generator side: L_G backward with the discriminators frozen; gradients averaged over processes.
    Returns (L_G, terms, pictures for the sample grid, what the discriminator step needs)."""
    for disc in models.discriminators():
        disc.requires_grad_(False)
    try:
        with torch.autocast(rainy.device.type, enabled=amp):
            total, terms, pictures, cache = models.objective.step_loss(models, rainy, clean, rand)
        scaler.scale(total).backward()
    finally:
        for disc in models.discriminators():
            disc.requires_grad_(True)
    distributed.average_gradients(models.generator_parameters(), world)
    detach = lambda d: {k: v.detach() for k, v in d.items()}
    return total.detach(), detach(terms), detach(pictures), detach(cache)


def discriminator_gradients(models: Models, rainy: torch.Tensor, clean: torch.Tensor, cache: dict,
                            world: distributed.World, scaler, amp: bool) -> dict[str, torch.Tensor]:
    with torch.autocast(clean.device.type, enabled=amp):
        loss, terms = models.objective.disc_loss(models, rainy, clean, cache)
    scaler.scale(loss).backward()
    distributed.average_gradients(models.discriminator_parameters(), world)
    return {k: v.detach() for k, v in terms.items()}


def _sample_grid(pictures: dict[str, torch.Tensor]) -> np.ndarray:
    """One row per sample (up to 4): the pictures side by side, e.g. O | B | |R|×3 (faint streaks made visible)."""
    def rgb(t):
        return (t.clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)

    n = len(next(iter(pictures.values())))
    rows = [[label(rgb(t[i]), name) for name, t in pictures.items()] for i in range(min(4, n))]
    return grid(rows, tile_width=max(128, next(iter(pictures.values())).shape[-1]))


def load_branches(path: str | Path, models: Models) -> int:
    """Copies G_B and G_R from a training checkpoint (`last.safetensors` of another run) into `models`; returns the
    step it was saved at. Lets several objectives start from the same stage-1 initialisation."""
    import json

    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from derain_edge.checkpoint import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init-from checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint: {e}") from e
    if header.get("format") != "derain-edge/checkpoint":
        raise CheckpointError(f"{path}: not a derain-edge training checkpoint")
    for name in ("g_b", "g_r", "g_o"):
        if not hasattr(models, name):
            continue
        prefix = f"models.{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not state and name != "g_b":  # e.g. G_O from a decomposition run's checkpoint: it starts untrained
            log.warning("%s holds no %s: it starts untrained (the identity)", path, name)
            continue
        try:
            getattr(models, name).load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: its {name} does not fit this generator configuration: {e}") from e
    return int(json.loads(header.get("meta", "{}")).get("step", 0))


def _check_resume(cfg: AnlclTrainConfig, stored: dict) -> None:
    now = dataclasses.asdict(cfg)
    diffs = [f"{k}: checkpoint {stored.get(k)!r} vs now {now[k]!r}" for k in AnlclTrainConfig.FIXED if stored.get(k) != now[k]]
    if diffs:
        raise ValueError(f"{cfg.out} holds a run with different settings ({'; '.join(diffs)}); "
                         "resume with the same settings or choose another --out")


def _write_csv(path: Path, rows: list[dict]) -> None:
    first = ["step", "stage", "seconds"]
    keys = first + sorted({k for row in rows for k in row} - set(first))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def train(cfg: AnlclTrainConfig, progress: bool = True, stop_after: int | None = None) -> dict:
    """Runs (or resumes) training; returns {"rows": scalars, "step": last step}. `stop_after` ends the call after
    that many steps of this call (tests)."""
    device = pick_device(cfg.device)
    world = distributed.setup(device.type)
    if device.type == "cuda" and world.enabled:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    amp = cfg.amp and device.type == "cuda"
    out = Path(cfg.out)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    models, opts = build(cfg, device)
    scalers = {k: torch.amp.GradScaler("cuda", enabled=amp) for k in opts}
    step, rows = 0, []
    if (out / LAST).exists():
        meta = load_checkpoint(out / LAST, {"models": models}, opts)
        _check_resume(cfg, meta["config"])
        step, rows = meta["step"], meta["rows"]
        for k, state in meta.get("scalers", {}).items():
            if amp and state:
                scalers[k].load_state_dict(state)
        if world.main:
            log.info("resuming %s from step %d", out / LAST, step)
    elif cfg.init_from:
        at = load_branches(cfg.init_from, models)
        if world.main:
            log.info("G_B and G_R initialised from %s (step %d)", cfg.init_from, at)

    patch_min = cfg.patch
    clean = load_folders(cfg.clean, patch_min, "clean")
    rainy = load_folders(cfg.rainy, patch_min, "rainy") if cfg.iters > 0 else []
    crops = Crops(rainy, clean, cfg.patch, cfg.seed, presets=tuple(cfg.init_presets) if cfg.init_presets else None,
                  dry_fraction=cfg.init_dry)
    share = world.share(cfg.batch)
    total_steps = cfg.init_iters + cfg.iters
    probe = None
    if world.main and cfg.probe_every > 0 and (cfg.probe or cfg.probe_dry):
        from .probe import Probe

        probe = Probe(cfg.probe, cfg.probe_dry, cfg.probe_max_side)
    if world.main:
        log.info("ANLCL-lite %s: %d clean photos, %d rainy images; %d init + %d unsupervised steps; device %s, %d process(es)",
                 models.loss_cfg.objective, len(clean), len(rainy), cfg.init_iters, cfg.iters, device, world.size)
    config_json = dataclasses.asdict(cfg)

    def checkpoint():
        if not world.main:
            return
        scaler_states = {k: (s.state_dict() if s.is_enabled() else {}) for k, s in scalers.items()}
        save_checkpoint(out / LAST, {"models": models}, opts,
                        {"step": step, "config": config_json, "rows": rows, "scalers": scaler_states})
        if rows:
            _write_csv(out / "scalars.csv", rows)
            atomic_write_text(out / "scalars.json", json.dumps(rows))
            try:
                from .curve import draw_curve

                draw_curve(rows, out / "curve.png", title=f"{out.name}: {models.loss_cfg.objective}")
            except Exception as e:  # a plotting problem must never stop training
                log.warning("could not draw %s: %s", out / "curve.png", e)

    def run_probe():
        """Scores the probe sets (no gradients), adds a row, keeps G_B of this step in probe/ for val selection."""
        if probe is None or any(r.get("step") == step and "probe" in r for r in rows):
            return
        t = time.time()
        second = None if models.loss_cfg.translation else models.g_r
        row = {"step": step, "stage": 1 if step <= cfg.init_iters and cfg.init_iters > 0 else 2, "probe": 1,
               **probe.inputs(), **probe(models.g_b, second)}
        row["seconds"] = round(time.time() - t, 3)
        rows.append(row)
        save_weights(models.g_b, out / "probe" / f"g_b_{step:07d}.safetensors", {"step": step, "probe": row})
        log.info("probe at step %d: %s", step, ", ".join(f"{k[6:]} {v}" for k, v in row.items()
                                                           if k.startswith("probe/") and "input" not in k))

    bar = _progress(total=total_steps, initial=step, desc=f"ANLCL-lite {models.loss_cfg.objective}", unit="it",
               dynamic_ncols=True, disable=not (progress and world.main))
    acc: dict[str, float] = {}
    count, t0, t_ckpt, done = 0, time.time(), time.time(), 0
    models.train()
    if step < total_steps:
        run_probe()  # where this call starts (the initialisation, for a stage-2 run from --init-from)
    while step < total_steps and (stop_after is None or done < stop_after):
        stage = 1 if step < cfg.init_iters else 2
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        if stage == 1:
            rainy_b, clean_b = (t.to(device) for t in crops.synthetic(step, share))
            loss, terms, pictures = init_gradients(models, rainy_b, clean_b, world, scalers["init"], amp)
            scalers["init"].step(opts["init"])
            scalers["init"].update()
        else:
            s2 = step - cfg.init_iters
            rainy_b, clean_b = (t.to(device) for t in crops.unpaired(s2, share))
            rand = StepRandom(cfg.seed, s2, cfg.batch, share.start, len(share), device)
            replay = None
            if cfg.replay > 0:  # its gradients are summed with L_G's and averaged over processes with them
                syn_o, syn_c = (t.to(device) for t in crops.synthetic(REPLAY_STEPS + s2, share))
                replay = replay_gradients(models, syn_o, syn_c, cfg.replay, scalers["g"], amp)
            loss, terms, pictures, cache = generator_gradients(models, rainy_b, clean_b, rand, world, scalers["g"], amp)
            if replay is not None:
                terms["replay"] = replay
            scalers["g"].step(opts["g"])
            scalers["g"].update()
            opts["d"].zero_grad(set_to_none=True)
            terms.update(discriminator_gradients(models, rainy_b, clean_b, cache, world, scalers["d"], amp))
            scalers["d"].step(opts["d"])
            scalers["d"].update()
            models.objective.after_step(models)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; last good checkpoint: {out / LAST}")
        step += 1
        done += 1
        bar.update(1)
        for k, v in {"total": loss, **terms}.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        count += 1
        boundary = step == cfg.init_iters or step == total_steps
        if step % cfg.log_every == 0 or boundary:
            row = {"step": step, "stage": stage, "seconds": round((time.time() - t0) / count, 4)}
            row.update({k: round(v / count, 6) for k, v in acc.items()})
            rows.append(row)
            bar.set_postfix(loss=f"{row['total']:.4f}", stage=stage)
            acc, count, t0 = {}, 0, time.time()
        if world.main and (step % cfg.sample_every == 0 or boundary):
            write_image(out / "samples" / f"step_{step:07d}.png", _sample_grid(pictures))
        if world.main and step == cfg.init_iters:
            save_weights(models.g_b, out / STAGE1, {"step": step, "stage": 1})
        if probe is not None and (step % cfg.probe_every == 0 or boundary):
            run_probe()
        if step % cfg.ckpt_every == 0 or boundary or time.time() - t_ckpt > 300:
            checkpoint()
            t_ckpt = time.time()
    bar.close()
    checkpoint()
    if world.main and step == total_steps:
        save_weights(models.g_b, out / FINAL, {"step": step, "objective": models.loss_cfg.objective,
                                               "config": {k: config_json[k] for k in AnlclTrainConfig.FIXED}})
    distributed.barrier(world)
    return {"rows": rows, "step": step, "world": world}
