"""derain-export: ONNX, Jetson/TensorRT, CoreML and TFLite artifacts of a deraining model, each checked against PyTorch.

    derain-export --target jetson                      # shipped LPNet, FP16 + INT8 bundle in exports/
    derain-export --target all --out exports/          # every format with its defaults
    derain-export --target tflite --precision int16x8 --size 640x480 --calib frames/ --val rain100h-dev/

Exit codes: 0 all artifacts within their accuracy limits; 1 an artifact exceeded its limit (it was removed) or a
target failed; 2 bad arguments, inputs or a missing backend (nothing exported); 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derain_edge.outputs import fail as _fail

PROG = "derain-export"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same "error: …" + exit 2, with the usage line first
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .formats import ALL_PRECISIONS, FORMATS

    targets = "|".join([f.name for f in FORMATS] + ["all"])
    p = _Parser(prog=PROG, description="Export a deraining model for edge devices; every artifact gets a sidecar "
                "JSON with its I/O contract, parity against PyTorch and accuracy cost.",
                epilog="Formats: " + "; ".join(f"{f.name} ({', '.join(f.aliases)}): {f.description}" for f in FORMATS))
    p.add_argument("--target", action="append", metavar="T",
                   help=f"{targets} (repeatable or comma-separated; aliases such as trt, ios, lite accepted)")
    p.add_argument("--model", default="lpnet", metavar="NAME", help="model from derain_edge.registry (lpnet, anlcl; default: lpnet)")
    p.add_argument("--weights", metavar="FILE", help="weights to export instead of the shipped ones")
    p.add_argument("--precision", metavar="P", help=f"{'|'.join(ALL_PRECISIONS)} (default: each target's defaults)")
    p.add_argument("--calib", metavar="DIR|VIDEO|NPY",
                   help="calibration frames for int8/16x8: a folder of images, a video or a saved .npy set "
                        "(default: synthetic rain over dead-leaves scenes — real frames from your camera are better)")
    p.add_argument("--calib-count", type=int, default=32, metavar="N", help="calibration frames (default: 32)")
    p.add_argument("--size", action="append", metavar="WxH",
                   help="frame size, width first like a camera's 640x480 (repeatable). Fixed-size targets make one "
                        "model per size (default 640x480, 1280x720, 1920x1080); onnx exports a fixed-size model; "
                        "jetson sets the TensorRT profile")
    p.add_argument("--dynamic", action="store_true", help="keep H×W dynamic (onnx, jetson; the default for them)")
    p.add_argument("--val", metavar="DIR", help="paired set (rainy/, clean/) for the accuracy cost against ground "
                   "truth (default: synthetic pairs)")
    p.add_argument("--val-limit", type=int, metavar="N", help="use only the first N validation pairs")
    p.add_argument("--out", default="exports", metavar="DIR", help="output folder (default: exports/)")
    p.add_argument("--opset", type=int, default=20, metavar="N", help="ONNX opset (default: 20, minimum 18)")
    p.add_argument("--allow-degraded", action="store_true",
                   help="keep artifacts whose accuracy cost exceeds the limit (marked degraded in the sidecar)")
    p.add_argument("--formats", action="store_true", help="print the table of formats and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines would drown the step log
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from . import exporter
    from .formats import MissingDependency, TargetUnavailable, table_markdown

    if args.formats:
        print(table_markdown())
        return 0
    if not args.target:
        return _fail("give --target onnx|jetson|coreml|tflite|all")
    try:
        request = exporter.validate(
            args.target, precision=args.precision, model=args.model, weights=args.weights, calib=args.calib,
            sizes=args.size, dynamic=args.dynamic, val=args.val, out=args.out, allow_degraded=args.allow_degraded,
            calib_count=args.calib_count, val_limit=args.val_limit, opset=args.opset)
        exporter.check_backends(request)
        report = exporter.run(request)
    except (exporter.ExportArgumentError, MissingDependency, TargetUnavailable) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted: artifacts of the unfinished step were removed", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # calibration / image errors carry their own message
        return _fail(str(e))
    print(exporter.cost_table(report, request.out))
    if report.failed:
        return 1
    print(f"artifacts and sidecars in {request.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
