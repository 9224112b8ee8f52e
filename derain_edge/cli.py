"""Console entry points: derain-train and derain-eval (derain-export, derain-run and derain-bench are reserved)."""
from __future__ import annotations

import argparse
import logging
import sys


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def train_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derain-train", description="Train a deraining model.")
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = sub.add_parser("lpnet", help="supervised LPNet (Fu et al. 2019) on real and/or synthesized pairs")
    p.add_argument("--pairs", action="append", default=[], metavar="DIR", help="folder with rainy/ and clean/ pairs (repeatable)")
    p.add_argument("--clean", action="append", default=[], metavar="DIR", help="folder of clean photos to render rain over (repeatable)")
    p.add_argument("--val", metavar="DIR", help="folder with rainy/ and clean/ pairs for validation PSNR-Y and best-checkpoint selection")
    p.add_argument("--out", default="runs/lpnet", metavar="DIR", help="checkpoints, curve.png and history.json (default: %(default)s); an existing run there is resumed")
    p.add_argument("--iters", type=int, default=20000, help="total iterations (default: %(default)s)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--patch", type=int, default=80, help="training crop size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-fraction", type=float, default=0.5, help="share of synthetic crops when both --pairs and --clean are given")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--init", metavar="WEIGHTS", help="start from these weights (fine-tuning)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 …")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    args = parser.parse_args(argv)
    _setup_logging()
    if not args.pairs and not args.clean:
        return _fail("give training data: --pairs DIR (with rainy/ and clean/) and/or --clean DIR (photos to render rain over)")
    from lpnet.train import TrainConfig, train

    cfg = TrainConfig(
        out=args.out, pairs=args.pairs, clean=args.clean, val=args.val, iters=args.iters, batch=args.batch,
        patch=args.patch, lr=args.lr, seed=args.seed, synthetic_fraction=args.synthetic_fraction,
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




_RESERVED = {
    "derain-export": "exports ONNX / TensorRT / CoreML / TFLite artifacts (the export issue)",
    "derain-run": "runs the OpenCV runtime on cameras, videos and the demo (the runtime issue)",
    "derain-bench": "benchmarks every backend against PyTorch eager (the runtime issue)",
}


def reserved_main(argv: list[str] | None = None) -> int:
    """Entry point for command names that are reserved but not built yet: says so instead of failing obscurely."""
    import os

    name = os.path.basename(sys.argv[0])
    what = _RESERVED.get(name, "is reserved")
    print(f"{name} {what}; it is not part of this release yet.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(train_main())
