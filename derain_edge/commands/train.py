"""Console entry point derain-train: LPNet (supervised) and ANLCL-lite (no clean ground truth)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from derain_edge.outputs import fail as _fail


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derain-train", description="Train a deraining model.")
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = sub.add_parser("lpnet", help="supervised LPNet (Fu et al. 2019) on real and/or synthesized pairs")
    p.add_argument("--pairs", action="append", default=[], metavar="DIR", help="folder with rainy/ and clean/ pairs (repeatable)")
    p.add_argument("--clean", action="append", default=[], metavar="DIR", help="folder of clean photos to render rain over (repeatable)")
    p.add_argument("--val", action="append", default=[], metavar="DIR", help="folder with rainy/ and clean/ pairs for validation PSNR-Y (repeatable: heavy and light)")
    p.add_argument("--val-dry", action="append", default=[], metavar="DIR", help="folder of rain-free photos, scored output vs input (repeatable); the best checkpoint maximises the mean over every --val and --val-dry set")
    p.add_argument("--out", default="runs/lpnet", metavar="DIR", help="checkpoints, curve.png and history.json (default: %(default)s); an existing run there is resumed")
    p.add_argument("--iters", type=int, default=20000, help="total iterations (default: %(default)s)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--patch", type=int, default=80, help="training crop size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-fraction", type=float, default=0.5, help="share of crops with rain rendered over --clean photos (default: %(default)s)")
    p.add_argument("--dry-fraction", type=float, default=0.0, help="share of dry crops (clean → clean) that teach the model to leave rain-free frames alone (default: %(default)s); real pairs get the rest")
    p.add_argument("--presets", default="heavy", help="comma-separated rain presets for rendered crops, drawn uniformly: drizzle, light, moderate, heavy (default: %(default)s)")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--init", metavar="WEIGHTS", help="start from these weights (fine-tuning)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 …")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    _add_anlcl_parser(sub)
    args = parser.parse_args(argv)
    _setup_logging()
    if args.model == "anlcl":
        return _anlcl_main(args)
    if not args.pairs and not args.clean:
        return _fail("give training data: --pairs DIR (with rainy/ and clean/) and/or --clean DIR (photos to render rain over)")
    from lpnet.train import TrainConfig, train

    cfg = TrainConfig(
        out=args.out, pairs=args.pairs, clean=args.clean, val=args.val, iters=args.iters, batch=args.batch,
        patch=args.patch, lr=args.lr, seed=args.seed, synthetic_fraction=args.synthetic_fraction, dry_fraction=args.dry_fraction,
        presets=[s.strip() for s in args.presets.split(",") if s.strip()], val_dry=args.val_dry,
        val_every=args.val_every, ckpt_every=args.ckpt_every, init=args.init, device=args.device, amp=args.amp,
    )
    try:
        history = train(cfg)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with the same command (checkpoint in {args.out})", file=sys.stderr)
        return 130
    if history.get("best"):
        print(f"best validation PSNR-Y {history['best'][1]:.2f} dB at iteration {history['best'][0]}; weights in {args.out}/best.safetensors")
    return 0



def _add_anlcl_parser(sub) -> None:
    from anlcl_lite.objective import OBJECTIVES, TERMS, TERMS_OF
    from anlcl_lite.losses.asymmetric import ETA_MODES
    from anlcl_lite.sampling import NEGATIVE_MODES, SAMPLINGS

    p = sub.add_parser("anlcl", help="ANLCL-lite: unsupervised (no clean ground truth) asymmetric non-local contrastive training",
                       description="Two stages: both generators initialised on rain rendered over --clean photos, then the "
                                   "unsupervised objective on real --rainy images (their ground truth is never read). "
                                   "--objective picks ANLCL, NLCL or the peers DCD-GAN / CCLGAN on the same light generator. "
                                   "Run under torchrun for several processes/GPUs.")
    p.add_argument("--rainy", action="append", default=[], metavar="DIR", help="folder of real rainy images, no ground truth (repeatable)")
    p.add_argument("--clean", action="append", default=[], metavar="DIR", help="folder of clean photos: rendered pairs for stage 1 and the unpaired 'real' domain of the discriminator (repeatable)")
    p.add_argument("--objective", default="anlcl", choices=OBJECTIVES, help="anlcl (default), nlcl (no asymmetric term), dcdgan, cclgan (needs --semantic-encoder); see docs/anlcl.md")
    p.add_argument("--out", default="runs/anlcl", metavar="DIR", help="checkpoints, scalars.csv, samples/ (default: %(default)s); an existing run there is resumed")
    p.add_argument("--init-iters", type=int, default=1000, help="stage 1 steps on rendered pairs (default: %(default)s)")
    p.add_argument("--iters", type=int, default=5000, help="stage 2 unsupervised steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=4, help="global batch (split over torchrun processes)")
    p.add_argument("--patch", type=int, default=128, help="training crop size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--init-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=24, help="generator width (default: %(default)s)")
    p.add_argument("--blocks", type=int, default=4, help="generator residual blocks (default: %(default)s)")
    p.add_argument("--down", action="store_true", help="2x down/up around the residual blocks")
    p.add_argument("--norm", default="instance", choices=["instance", "none"])
    p.add_argument("--ndf", type=int, default=64, help="discriminator width (default: %(default)s)")
    p.add_argument("--sampling", default="nonlocal", choices=SAMPLINGS, help="layer-contrast positives/negatives")
    p.add_argument("--loc-negatives", default="most", choices=NEGATIVE_MODES, help="location-contrast negatives")
    p.add_argument("--eta", default="entropy", choices=ETA_MODES, help="asymmetric-contrast η: per sample from entropy, or fixed")
    p.add_argument("--off", action="append", default=[], choices=TERMS, metavar="TERM",
                   help="switch a loss term off (repeatable): " + "; ".join(f"{o}: {', '.join(t)}" for o, t in TERMS_OF.items()))
    for name, default, what in (("lam", 0.1, "layer contrast"), ("delta", 1.0, "self-consistency"), ("mu", 1.0, "location contrast"),
                                ("sigma", 1.0, "asymmetric contrast"), ("gamma", 0.01, "L1 sparsity of R")):
        p.add_argument(f"--{name}", type=float, default=default, help=f"weight of the {what} (default: %(default)s)")
    p.add_argument("--weight", action="append", default=[], metavar="TERM=W",
                   help="weight of a dcdgan/cclgan term (repeatable): nce (2), idt (1), cyc (1), freq (1), intra (1), inter (0.01)")
    p.add_argument("--semantic-encoder", metavar="FILE", help="cclgan: frozen image encoder for the intra-cycle contrast, a TorchScript file (e.g. a traced CLIP image tower)")
    p.add_argument("--semantic-size", type=int, default=224, help="cclgan: side the images are resized to for the semantic encoder (default: %(default)s)")
    p.add_argument("--no-external", action="store_true", help="dcdgan: PatchNCE negatives from the same image only (no other images of the batch)")
    p.add_argument("--tau", type=float, default=0.07, help="layer-contrast temperature")
    p.add_argument("--n-query", type=int, default=64)
    p.add_argument("--n-pos", type=int, default=8, help="N_B, non-local positives per query")
    p.add_argument("--n-neg", type=int, default=256, help="N_R, negatives per query")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda …")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    p.add_argument("--init-from", metavar="CKPT", help="start G_B and G_R from another run's last.safetensors (e.g. a stage-1-only run, --init-iters 0 here)")
    p.add_argument("--init-presets", metavar="P1,P2", help="stage 1: render rain of these presets (drizzle, light, moderate, heavy; default heavy only)")
    p.add_argument("--init-dry", type=float, default=0.0, help="stage 1: share of dry clean→clean pairs (default: %(default)s)")
    p.add_argument("--anchor", type=float, default=0.0, help="stage 2: weight of the identity/dry anchor on the unpaired clean photos, L1(G_B(C), C) + |G_R(C)| (default: off)")
    p.add_argument("--replay", type=float, default=0.0, help="stage 2: weight of the stage-1 loss replayed on rendered pairs (--init-presets, --init-dry) against forgetting (default: off)")
    p.add_argument("--adv-weight", type=float, default=1.0, help="anlcl/nlcl: weight of the adversarial term on B (default: %(default)s)")
    p.add_argument("--probe", action="append", default=[], metavar="DIR", help="labeled folder (rainy/, clean/) scored every --probe-every steps, never trained on (repeatable)")
    p.add_argument("--probe-dry", action="append", default=[], metavar="DIR", help="dry photo folder scored output-vs-input every --probe-every steps (repeatable)")
    p.add_argument("--probe-every", type=int, default=100, help="probe period in steps (default: %(default)s; needs --probe/--probe-dry)")
    p.add_argument("--probe-max-side", type=int, default=0, help="downscale probe images to this long side (0: full size)")


def _anlcl_main(args) -> int:
    from anlcl_lite.objective import SWITCH_FIELD, TERMS_OF
    from anlcl_lite.semantic import SemanticEncoderError
    from derain_edge.checkpoint import CheckpointError

    if not args.clean:
        return _fail("give clean photos with --clean DIR (stage 1 renders rain over them; the discriminator's real domain)")
    if args.iters > 0 and not args.rainy:
        return _fail("give real rainy images with --rainy DIR for the unsupervised stage (or --iters 0)")
    if args.batch < 1 or args.patch < 32 or args.init_iters < 0 or args.iters < 0:
        return _fail("--batch must be ≥ 1, --patch ≥ 32 and the iteration counts ≥ 0")
    foreign = [t for t in args.off if t not in TERMS_OF[args.objective]]
    if foreign:
        return _fail(f"--off {', '.join(foreign)}: not a term of --objective {args.objective} ({', '.join(TERMS_OF[args.objective])})")
    weights = {}
    for item in args.weight:
        name, _, value = item.partition("=")
        try:
            weights[f"w_{name}"] = float(value)
        except ValueError:
            return _fail(f"--weight {item!r}: expected TERM=NUMBER, e.g. nce=2")
        if name not in ("nce", "idt", "cyc", "freq", "intra", "inter"):
            return _fail(f"--weight {item!r}: TERM is one of nce, idt, cyc, freq, intra, inter (ANLCL's weights are --lam, --delta, --mu, --sigma, --gamma)")
    if args.semantic_encoder and args.objective != "cclgan":
        return _fail("--semantic-encoder is only used by --objective cclgan")
    loss = {"objective": args.objective, "sampling": args.sampling, "loc_negatives": args.loc_negatives, "eta": args.eta,
            "lam": args.lam, "delta": args.delta, "mu": args.mu, "sigma": args.sigma, "gamma": args.gamma, "tau": args.tau,
            "n_query": args.n_query, "n_pos": args.n_pos, "n_neg": args.n_neg, "external": not args.no_external,
            "semantic_encoder": str(Path(args.semantic_encoder).resolve()) if args.semantic_encoder else None,
            "semantic_size": args.semantic_size, "anchor": args.anchor, "adv_weight": args.adv_weight, **weights, **{SWITCH_FIELD[t]: False for t in args.off}}
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    from anlcl_lite.train import AnlclTrainConfig, train

    cfg = AnlclTrainConfig(
        out=args.out, rainy=args.rainy, clean=args.clean, init_iters=args.init_iters, iters=args.iters, batch=args.batch,
        patch=args.patch, lr=args.lr, init_lr=args.init_lr, seed=args.seed, width=args.width, blocks=args.blocks,
        down=args.down, norm=args.norm, ndf=args.ndf, loss=loss, log_every=args.log_every, sample_every=args.sample_every,
        ckpt_every=args.ckpt_every, device=args.device, amp=args.amp, init_from=args.init_from,
        init_presets=args.init_presets.split(",") if args.init_presets else None, init_dry=args.init_dry,
        probe=args.probe, probe_dry=args.probe_dry, probe_every=args.probe_every if (args.probe or args.probe_dry) else 0,
        probe_max_side=args.probe_max_side, replay=args.replay,
    )
    try:
        result = train(cfg)
    except (ValueError, FileNotFoundError, FloatingPointError, CheckpointError, SemanticEncoderError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with the same command (checkpoint in {args.out})", file=sys.stderr)
        return 130
    logged = [r for r in result["rows"] if "total" in r]  # probe rows carry scores, not the objective
    if result["world"].main and logged:
        print(f"step {result['step']}: objective {logged[-1]['total']:.4f}; G_B weights in {args.out}/final.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
