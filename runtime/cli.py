"""derain-run: derain a camera, stream, video or images live, or play the bundled demo.

    derain-run demo                                   # synthetic rain over a moving scene, in a window
    derain-run demo out.mp4 --headless                # the same, written to a video
    derain-run 0                                      # webcam, rainy | derained side by side
    derain-run rtsp://cam/stream out/ --headless      # an IP camera to a folder of frames
    derain-run clip.mp4 clean.mp4 --headless --model exports/lpnet_fp32.onnx --view derained
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys

from derain_edge.files import atomic_write_text

from derain_edge.outputs import fail as _fail

from .errors import RuntimeErrorBase
from .stream import VIEWS

PROG = "derain-run"
DEMO_FRAMES = 150


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (W×H, as cameras are specified) → (H, W)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT like 640x480, got '{text}'")
    return int(m.group(2)), int(m.group(1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("source", metavar="SOURCE",
                   help="demo | camera index | /dev/videoN | v4l2://… | csi://N | rtsp://… | video | image | folder | glob")
    p.add_argument("sink", metavar="SINK", nargs="?",
                   help="display://0 (default) | out.mp4 / out.avi / out.mkv | out.png | folder/")
    p.add_argument("--model", default=None, metavar="ARTIFACT",
                   help="weights (.safetensors), an exported artifact (.onnx, .tflite, .engine, .mlpackage, Jetson "
                        "bundle folder) or a model name (default: the shipped LPNet weights)")
    p.add_argument("--backend", default="auto",
                   help="auto | pytorch | onnxruntime | openvino | opencv | tflite | coreml | tensorrt (default: "
                        "%(default)s = the fastest engine installed; weights are exported to ONNX once and cached)")
    p.add_argument("--precision", default=None,
                   help="fp32 (default) | bf16 (OpenVINO) | int8 (Q/DQ, quantized once and cached) | fp16 (CUDA); "
                        "picks the precision from a Jetson bundle too")
    p.add_argument("--view", default="side-by-side", choices=VIEWS, help="(default: %(default)s)")
    p.add_argument("--headless", action="store_true", help="no window (write to SINK only, or nothing)")
    p.add_argument("--no-overlay", action="store_true", help="don't draw FPS/latency/dropped counters")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help=f"stop after N frames (demo default {DEMO_FRAMES}; 0 = no limit)")
    p.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                   help="demo frame size (default 320x240) / camera resolution to request")
    p.add_argument("--fps", type=float, default=None, help="output video frame rate (default: the source's, or 30)")
    p.add_argument("--no-gate", action="store_true",
                   help="the engine's raw output, without the rain gate that keeps dry frames untouched (derain_edge.gate)")
    p.add_argument("--stabilize", type=float, nargs="?", const=0.6, default=0.0, metavar="STRENGTH",
                   help="temporal stabilisation for fixed cameras (default strength when given: 0.6)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap for fixed-size artifacts (px)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads (default: the idle cores — physical cores minus the load average, ≥ 1)")
    p.add_argument("--retries", type=int, default=10, help="reconnect attempts when a live stream drops")
    p.add_argument("--stall-timeout", type=float, default=30.0, metavar="S",
                   help="end with an error when the source gives no frame or the output accepts none for S seconds "
                        "(default: %(default)s; 0 = wait forever)")
    p.add_argument("--seed", type=int, default=0, help="demo seed")
    p.add_argument("--json", default=None, metavar="FILE", help="write the run's counters and timings as JSON")
    p.add_argument("--server", default=None, metavar="URL",
                   help="send frames to a Triton server (derain-serve) at http://HOST:8000 or grpc://HOST:8001 instead "
                        "of running the model here (docs/serving.md)")
    p.add_argument("--server-model", default="derain", metavar="NAME", help="model name on --server (default: %(default)s)")
    p.add_argument("--server-timeout", type=float, default=30.0, metavar="S",
                   help="per-request timeout and how long to retry an unreachable --server (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("runtime.auto").setLevel(logging.INFO)  # "exporting … once" is worth seeing
    if args.frames is not None and args.frames < 0:
        return _fail("--frames must be ≥ 0")
    if args.stabilize and not 0 < args.stabilize < 1:
        return _fail("--stabilize strength must be in (0, 1)")
    if args.stall_timeout < 0:
        return _fail("--stall-timeout must be ≥ 0")
    if args.server and (args.model or args.backend != "auto" or args.precision or args.threads):
        return _fail("--model/--backend/--precision/--threads pick the engine, which runs on the server with --server: "
                     "give them to derain-serve")
    if args.json and not _writable_destination(args.json):
        return _fail(f"--json {args.json}: the folder does not exist or is not writable")
    restore = _interrupt_on_signals()
    summary = {"source": args.source, "sink": args.sink, "backend": None, "frames": 0, "ended": "not started"}
    try:
        return _run(args, summary)
    except (RuntimeErrorBase, ValueError, FileNotFoundError) as e:
        summary.setdefault("error", str(e))
        if summary["ended"] in ("not started", "running"):
            summary["ended"] = f"error: {e}"
        return _fail(str(e))
    except KeyboardInterrupt:
        summary["ended"] = "interrupted"
        print("\ninterrupted; output finalized", file=sys.stderr)
        return 130
    finally:
        if args.json:
            try:
                atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")
            except OSError as e:
                print(f"error: --json {args.json}: {e}", file=sys.stderr)
        restore()


def _writable_destination(path: str) -> bool:
    import os
    from pathlib import Path

    folder = Path(path).expanduser().resolve().parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _run(args, summary: dict) -> int:
    from derain_edge.progress import progress

    from .auto import describe
    from .derainer import Derainer
    from .reader import FrameReader
    from .sinks import DisplaySink, open_sink
    from .sources import open_source, parse_source
    from .stream import StreamStats, run_stream

    stall = args.stall_timeout or None
    spec = parse_source(args.source)
    limit = args.frames
    if spec.kind == "demo":
        demo_frames = DEMO_FRAMES if limit is None else (limit or None)
        source = open_source(spec, frames=demo_frames, size=args.size or (240, 320), seed=args.seed)
    elif spec.kind == "camera" and args.size:
        source = open_source(spec, height=args.size[0], width=args.size[1])
    else:
        source = open_source(spec)
    if args.server:  # the model runs on a Triton server; stabilisation stays here, per stream
        from .triton_client import RemoteDerainer

        derainer = RemoteDerainer(args.server, args.server_model, timeout=args.server_timeout,
                                  retry_for=args.server_timeout, stabilize=args.stabilize,
                                  wait_ready=args.server_timeout)
    else:
        derainer = Derainer(args.model, args.backend, precision=args.precision, threads=args.threads,
                            overlap=args.overlap, stabilize=args.stabilize, gate=not args.no_gate)
    summary["backend"] = derainer.backend
    reader = FrameReader(source, max_retries=args.retries, max_frames=limit or None, stall_timeout=stall)
    sink = None
    try:
        fps = args.fps or (source.fps if source.fps and source.fps > 0 else 30.0)
        sink = open_sink(args.sink, fps=fps, headless=args.headless)
    finally:
        if sink is None:
            reader.stop()
    print(f"{PROG}: engine {derainer.describe() if args.server else describe(derainer.engine)}", file=sys.stderr)
    total = source.count if limit is None else min(limit, source.count or limit) if limit else source.count
    bar = None if isinstance(sink, DisplaySink) else progress(total=total, unit="frame", desc=PROG)
    stats = StreamStats()
    summary["ended"] = "running"
    try:
        run_stream(derainer, reader, sink, view=args.view, overlay=not args.no_overlay, progress=bar, stats=stats,
                   stall_timeout=stall)
    finally:
        if bar is not None:
            bar.close()
        summary.update(stats.summary())
        print(f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} fps, {derainer.backend}); "
              f"dropped {stats.dropped}, corrupt {stats.corrupt}, reconnects {stats.reconnects}"
              + (f"; wrote {args.sink}" if args.sink and stats.frames else ""), file=sys.stderr)
    if stats.ended.startswith(("lost", "error")):
        return _fail(f"source {args.source}: {stats.ended}")
    if stats.frames == 0:
        return _fail(f"source {args.source}: no usable frames ({stats.corrupt} corrupt)")
    return 0


def _interrupt_on_signals():
    """SIGTERM (systemd, docker stop) and Ctrl-C end the run the same way: KeyboardInterrupt, output finalized,
    exit 130. A second signal while the output is being finalized is ignored (said so on stderr); a third ends the
    process at once. Returns a function that puts the previous handlers back."""
    import os

    count = [0]

    def handler(signum, frame):
        count[0] += 1
        if count[0] == 1:
            raise KeyboardInterrupt
        if count[0] == 2:
            print(f"\n{PROG}: finishing the output (signal again to abandon it)", file=sys.stderr)
            return
        os._exit(130)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old = signal.getsignal(sig)
            if sig == signal.SIGINT and old in (signal.SIG_IGN, None):
                continue  # started with Ctrl-C ignored (nohup, a background job): keep it that way
            signal.signal(sig, handler)
            previous[sig] = old
        except ValueError:  # not the main thread (embedded use)
            pass

    def restore():
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                pass

    return restore


if __name__ == "__main__":
    sys.exit(main())
