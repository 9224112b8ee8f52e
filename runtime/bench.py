"""derain-bench: latency of every backend available here against PyTorch eager, measured in the same run.

    derain-bench                                        # LPNet at 640x480: eager, ORT, OpenVINO, cv2.dnn
    derain-bench --model anlcl                          # any registered network (derain_edge.registry) instead
    derain-bench --model exports/lpnet_fp32.onnx --model exports/lpnet_int8_qdq.onnx --size 640x480 --size 1280x720
    derain-bench --json bench.json

For each size: warm-up, then latency p50/p90/p99 and fps per backend and precision. Backends are measured in
interleaved rounds (every backend once per round) so that load from other processes on a shared machine spreads over
all of them instead of hitting one. The **baseline** is PyTorch eager fp32 — the faster of torch's default thread
count and one thread, so a speed-up is never inflated by a badly threaded baseline. Alongside: the model's MACs per
frame (torch.utils.flop_counter) and the machine's measured convolution throughput (a large 3×3 conv, and a
16-channel one shaped like LPNet's finest level), so each backend's fps reads as a fraction of the roofline; and
the streaming loop's overhead (reader thread + Derainer + overlay + sink) over raw inference.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derain_edge.files import atomic_write_text
from derain_edge.outputs import fail as _fail

from .cli import parse_size
from .errors import RuntimeErrorBase

PROG = "derain-bench"
SCHEMA = "derain-edge/bench/1"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class Candidate:
    label: str                 # e.g. "onnxruntime-fp32"
    precision: str
    make: object               # () -> Derainer
    source: str = ""
    derainer: object = None
    times: dict = field(default_factory=dict)  # size key -> [seconds]
    error: str | None = None


# ------------------------------------------------------------------------------------------------ measurements
def conv_throughput(thread_counts: list[int], size: tuple[int, int] = (480, 640), reps: int = 15) -> dict:
    """GMAC/s of torch conv2d on this machine, the best over `thread_counts` and `reps` runs: a large 3×3 conv
    (64→64, the compute roofline) and a 16→16 3×3 conv at the frame size (LPNet's finest, most expensive layer
    shape: memory-bound, the realistic ceiling for this model)."""
    import torch

    before = torch.get_num_threads()
    out = {}
    cases = {"peak_3x3_64ch": (64, 128, 128), "lpnet_3x3_16ch": (16, size[0], size[1])}
    with torch.inference_mode():
        for name, (c, h, w) in cases.items():
            conv = torch.nn.Conv2d(c, c, 3, padding=1)
            x = torch.rand(1, c, h, w)
            macs = c * c * 9 * h * w
            best, best_t = 0.0, None
            for t in thread_counts:
                torch.set_num_threads(t)
                for _ in range(2):
                    conv(x)
                for _ in range(reps):
                    t0 = time.perf_counter()
                    conv(x)
                    rate = macs / (time.perf_counter() - t0) / 1e9
                    if rate > best:
                        best, best_t = rate, t
            out[name + "_gmacs"] = round(best, 2)
            out[name + "_threads"] = best_t
    torch.set_num_threads(before)
    return out


def macs_per_frame(model, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one forward pass at H×W (convolutions dominate; FLOPs = 2 × MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, *size))
    return int(counter.get_total_flops() // 2)


def percentiles(ts: list[float]) -> dict:
    ms = np.asarray(ts) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2),
            "fps": round(1000.0 / float(ms.mean()), 2), "n": int(ms.size)}


def streaming_overhead(derainer, size: tuple[int, int], frames: int) -> dict:
    """Mean ms/frame of the full loop (reader thread, Derainer, overlay, sink) vs plain Derainer calls."""
    from .reader import FrameReader
    from .sinks import NullSink
    from .source_base import Source
    from .stream import run_stream

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)

    class Repeat(Source):
        """The same frame `frames` times (no decode cost: the loop's own overhead is what is measured)."""

        def __init__(self):
            self.n = 0

        def read(self):
            if self.n >= frames:
                return None
            self.n += 1
            return frame

    derainer(frame)
    raw, loop = [], []
    for _ in range(2):  # alternate so that machine load hits both alike
        t0 = time.perf_counter()
        for _ in range(frames):
            derainer(frame)
        raw.append((time.perf_counter() - t0) / frames)
        t0 = time.perf_counter()
        stats = run_stream(derainer, FrameReader(Repeat()), NullSink(), view="side-by-side", overlay=True)
        loop.append((time.perf_counter() - t0) / max(stats.frames, 1))
    r, s = min(raw) * 1000, min(loop) * 1000
    return {"backend": derainer.backend, "size": f"{size[1]}x{size[0]}", "frames": frames,
            "raw_ms_per_frame": round(r, 2), "loop_ms_per_frame": round(s, 2),
            "overhead_pct": round(100.0 * (s / r - 1.0), 2)}


# ------------------------------------------------------------------------------------------------ candidates
def thread_counts(args) -> list[int]:
    return sorted({args.threads, 1} if args.try_one_thread else {args.threads}, reverse=True)


def _tag(threads: int) -> str:
    return f"{threads} thread" + ("s" if threads > 1 else "")


def split_models(values: list[str]) -> tuple[str, list[str]]:
    """``--model`` values → (the registered network to bench on every backend, artifact paths). ValueError naming
    the problem for a value that is neither, or for two networks."""
    from derain_edge.registry import is_model, list_models

    nets = [m for m in values if is_model(m)]
    artifacts = [m for m in values if not is_model(m)]
    for m in artifacts:
        if not Path(m).exists():
            raise ValueError(f"{m}: no such file or folder, and not a registered model ({', '.join(list_models())})")
    if len(set(nets)) > 1:
        raise ValueError(f"one network per run, got {', '.join(dict.fromkeys(nets))} (run derain-bench once each)")
    return (nets[0] if nets else "lpnet"), artifacts


def candidates(args, onnx_fp32: Path | None, onnx_int8: Path | None) -> list[Candidate]:
    """Every (backend, precision, thread count) to measure; unavailable ones are reported, not fatal."""
    from derain_edge.optional import importable

    from .derainer import Derainer

    have_ov = importable("openvino")
    net, artifacts = split_models(args.model)
    out = []
    for t in thread_counts(args):
        tag = _tag(t)
        out.append(Candidate(f"pytorch-fp32 ({tag})", "fp32",
                             lambda t=t: Derainer(None, "pytorch", threads=t, model_name=net), "shipped weights"))
        if args.compile:
            out.append(Candidate(f"pytorch-compile-fp32 ({tag})", "fp32",
                                 lambda t=t: Derainer(None, "pytorch-compile", threads=t, model_name=net)))
        if onnx_fp32 is not None:
            out.append(Candidate(f"onnxruntime-fp32 ({tag})", "fp32",
                                 lambda t=t: Derainer(onnx_fp32, "onnxruntime", threads=t), onnx_fp32.name))
            if have_ov:
                out.append(Candidate(f"openvino-fp32 ({tag})", "fp32",
                                     lambda t=t: Derainer(onnx_fp32, "openvino", threads=t), onnx_fp32.name))
                from .backends import OpenVinoBackend

                if OpenVinoBackend.supports("bf16"):
                    out.append(Candidate(f"openvino-bf16 ({tag})", "bf16",
                                         lambda t=t: Derainer(onnx_fp32, "openvino", precision="bf16", threads=t),
                                         onnx_fp32.name))
            if not args.skip_opencv and t == args.threads:  # cv2.dnn keeps its own thread pool
                out.append(Candidate("opencv-fp32", "fp32", lambda: Derainer(onnx_fp32, "opencv"), onnx_fp32.name))
        if onnx_int8 is not None:
            out.append(Candidate(f"onnxruntime-int8 ({tag})", "int8",
                                 lambda t=t: Derainer(onnx_int8, "onnxruntime", threads=t), onnx_int8.name))
            if have_ov:
                out.append(Candidate(f"openvino-int8 ({tag})", "int8",
                                     lambda t=t: Derainer(onnx_int8, "openvino", threads=t), onnx_int8.name))
        for m in artifacts:
            out.append(Candidate(f"artifact:{Path(m).name} ({tag})", "?",
                                 lambda m=m, t=t: Derainer(m, "auto", threads=t), str(m)))
    try:
        import torch

        if torch.cuda.is_available():
            out.append(Candidate("pytorch-fp16 (cuda)", "fp16", lambda: Derainer(
                None, "pytorch", device="cuda", precision="fp16", model_name=net)))
            out.append(Candidate("pytorch-fp32 (cuda)", "fp32",
                                 lambda: Derainer(None, "pytorch", device="cuda", model_name=net)))
    except ImportError:
        pass
    return out


def _export(work: Path, args) -> tuple[Path | None, Path | None]:
    """The shipped weights' ONNX fp32 and INT8 Q/DQ artifacts, made by the exporter (``export.exporter``: the same
    files and sidecars ``derain-export --target onnx`` writes; calibrated on synthetic rainy scenes, checked on two
    synthetic pairs, kept even when INT8 misses its accuracy limit: the bench measures speed)."""
    if args.no_export:
        return None, None
    from export import exporter

    request = exporter.validate("onnx", precision="fp32", model=split_models(args.model)[0], out=work, val_limit=2,
                                calib_count=8, allow_degraded=True)
    if not args.no_int8:
        request.precisions["onnx"] = ("fp32", "int8")
    report = exporter.run(request, write=lambda line: None, progress=False)
    made = {r.precision: r.path for r in report.results if r.path is not None}
    return made.get("fp32"), made.get("int8")


def run_bench(args) -> dict:
    import torch
    from derain_edge.progress import progress

    from derain_edge.metrics import psnr_y
    from derain_edge.registry import load_model

    from .demo import DemoSource

    sizes = list(dict.fromkeys(args.size or [(480, 640)]))
    if torch.cuda.is_available():
        sizes += [s for s in [(720, 1280), (1080, 1920)] if s not in sizes]
    work = tempfile.TemporaryDirectory(prefix="derain-bench-")
    onnx_fp32, onnx_int8 = _export(Path(work.name), args)
    cands = candidates(args, onnx_fp32, onnx_int8)
    for c in cands:
        try:
            c.derainer = c.make()
            c.precision = c.derainer.engine.precision
            if c.label.startswith("artifact:"):
                c.label = f"{c.derainer.backend} ({Path(c.source).name}, {c.label.rsplit('(', 1)[1]}"
        except (RuntimeErrorBase, ValueError, ImportError, RuntimeError) as e:
            c.error = str(e).splitlines()[0]
    live = [c for c in cands if c.error is None]
    net = split_models(args.model)[0]
    model = load_model(net)[0]
    results, speedups, speedups_fp32, best_of, best_fp32_of, baseline_of, macs_of = [], {}, {}, {}, {}, {}, {}
    total = len(sizes) * len(live) * (args.warmup + args.iters)
    bar = progress(total=total, desc=PROG, unit="run")
    for size in sizes:
        key = f"{size[1]}x{size[0]}"
        macs_of[key] = macs_per_frame(model, size)
        frame = DemoSource(frames=1, size=size, seed=7).read()  # a rainy frame: quality is measured on it too
        outputs = {}
        for c in live:
            for _ in range(args.warmup):
                outputs[c.label] = c.derainer(frame)
                bar.update(1)
            if not args.warmup:
                outputs[c.label] = c.derainer(frame)
            c.times[key] = []
        rounds = max(1, args.rounds)
        per_round = [args.iters // rounds + (1 if r < args.iters % rounds else 0) for r in range(rounds)]
        for n in per_round:
            for c in live:
                for _ in range(n):
                    t0 = time.perf_counter()
                    c.derainer(frame)
                    c.times[key].append(time.perf_counter() - t0)
                    bar.update(1)
        eager = [c for c in live if c.label.startswith("pytorch-fp32 (") and "cuda" not in c.label]
        base = min(eager, key=lambda c: statistics.median(c.times[key]))
        base_p50 = statistics.median(base.times[key]) * 1000
        baseline_of[key] = {"backend": base.label, "p50_ms": round(base_p50, 2)}
        reference = outputs[base.label][:, :, ::-1]
        rows = []
        for c in live:
            row = {"backend": c.label, "precision": c.precision, "size": key, "source": c.source,
                   **percentiles(c.times[key])}
            row["speedup_vs_eager"] = round(base_p50 / row["p50_ms"], 2)
            row["gmacs_achieved"] = round(macs_of[key] / (row["p50_ms"] / 1000) / 1e9, 2)
            q = psnr_y(outputs[c.label][:, :, ::-1], reference)
            row["psnr_y_vs_eager_db"] = round(q, 2) if np.isfinite(q) else None  # None: identical
            rows.append(row)
        others = [r for r in rows if not r["backend"].startswith("pytorch-fp32")] or rows
        best = min(others, key=lambda r: r["p50_ms"])
        best_fp32 = min((r for r in others if r["precision"] == "fp32"), key=lambda r: r["p50_ms"], default=best)
        speedups[key], best_of[key] = best["speedup_vs_eager"], best["backend"]
        speedups_fp32[key], best_fp32_of[key] = best_fp32["speedup_vs_eager"], best_fp32["backend"]
        results += rows
    bar.close()
    roof = conv_throughput(thread_counts(args), sizes[0])
    for r in results:
        r["roofline_fraction"] = round(r["gmacs_achieved"] / roof["peak_3x3_64ch_gmacs"], 3)
    stream = None
    if not args.skip_streaming and live:
        key0 = f"{sizes[0][1]}x{sizes[0][0]}"
        best_c = next(c for c in live if c.label == best_fp32_of[key0])
        stream = streaming_overhead(best_c.derainer, sizes[0], args.stream_frames)
    work.cleanup()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "schema": SCHEMA,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cores": _cores(), "threads": args.threads, "torch": torch.__version__,
                    "loadavg_at_end": load, "cuda": torch.cuda.is_available()},
        "model": net,
        "settings": {"warmup": args.warmup, "iters": args.iters, "rounds": args.rounds,
                     "thread_counts": thread_counts(args)},
        "macs_per_frame": macs_of,
        "conv_throughput": roof,
        "results": results,
        "eager_baseline": baseline_of,
        "best": best_of,
        "speedup_vs_eager": speedups,
        "best_fp32": best_fp32_of,
        "speedup_vs_eager_fp32": speedups_fp32,
        "streaming": stream,
        "unavailable": {c.label: c.error for c in cands if c.error},
    }


def table(report: dict) -> str:
    """The results as a Markdown table (what docs/runtime.md shows)."""
    lines = ["| size | backend | precision | p50 ms | p90 ms | p99 ms | fps | × eager | GMAC/s | % of conv peak "
             "| PSNR-Y vs eager |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        q = r.get("psnr_y_vs_eager_db")
        q = "identical" if q is None else ("∞" if q == float("inf") else f"{q:.1f} dB")
        lines.append(f"| {r['size']} | {r['backend']} | {r['precision']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['fps']:.2f} | {r['speedup_vs_eager']:.2f} | {r['gmacs_achieved']:.2f} | "
                     f"{100 * r['roofline_fraction']:.1f} | {q} |")
    return "\n".join(lines)


def summary(report: dict) -> str:
    roof = report["conv_throughput"]
    out = [f"model: {report.get('model', 'lpnet')} (shipped weights on every backend)", table(report), ""]
    for key, macs in report["macs_per_frame"].items():
        out.append(f"{key}: {macs / 1e9:.2f} GMAC/frame; baseline {report['eager_baseline'][key]['backend']} "
                   f"{report['eager_baseline'][key]['p50_ms']:.1f} ms; best {report['best'][key]} "
                   f"= {report['speedup_vs_eager'][key]:.2f}× eager; best fp32 {report['best_fp32'][key]} "
                   f"= {report['speedup_vs_eager_fp32'][key]:.2f}×")
    out.append(f"conv throughput (best of {report['settings']['thread_counts']} threads): "
               f"{roof['peak_3x3_64ch_gmacs']:.1f} GMAC/s (3×3, 64 ch, {roof['peak_3x3_64ch_threads']} thr), "
               f"{roof['lpnet_3x3_16ch_gmacs']:.1f} GMAC/s (3×3, 16 ch at frame size, "
               f"{roof['lpnet_3x3_16ch_threads']} thr)")
    s = report.get("streaming")
    if s:
        out.append(f"streaming loop ({s['backend']}, {s['size']}): {s['loop_ms_per_frame']:.1f} ms/frame vs raw "
                   f"{s['raw_ms_per_frame']:.1f} ms/frame → overhead {s['overhead_pct']:+.1f} %")
    for label, err in report["unavailable"].items():
        out.append(f"not run: {label}: {err}")
    load = report["machine"].get("loadavg_at_end")
    if load:
        out.append(f"load average at the end: {load[0]:.2f} on {report['machine']['cores']} cores "
                   "(a shared machine: numbers are noisy; compare rows of the same run only)")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    from derain_edge.registry import list_models

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="NAME|ARTIFACT",
                   help=f"a registered network ({', '.join(list_models())}; default lpnet) whose shipped weights are benched on "
                        "every backend (exported to ONNX for onnxruntime/OpenVINO/OpenCV), or an exported artifact "
                        "to bench as well (repeatable)")
    p.add_argument("--size", action="append", type=parse_size, metavar="WxH", help="frame size (repeatable; default 640x480)")
    p.add_argument("--json", metavar="FILE", help="write the full results as JSON")
    p.add_argument("--warmup", type=int, default=3, metavar="N",
                   help="untimed runs per backend and size before timing (default: 3)")
    p.add_argument("--iters", type=int, default=20, metavar="N",
                   help="timed runs per backend and size; p50/p90/p99 come from these (default: 20)")
    p.add_argument("--rounds", type=int, default=4, metavar="N",
                   help="interleaved rounds the iterations are split into, so load changes hit every backend alike "
                        "(default: 4)")
    p.add_argument("--threads", type=int, default=_cores(), help="threads for every backend (default: all cores)")
    p.add_argument("--no-one-thread", dest="try_one_thread", action="store_false",
                   help="don't also measure every backend with one thread (on a loaded machine one thread often wins)")
    p.add_argument("--no-int8", action="store_true", help="don't quantize an INT8 Q/DQ ONNX to bench")
    p.add_argument("--compile", action="store_true", help="also bench torch.compile (≈ 45 s compile per size)")
    p.add_argument("--no-export", action="store_true", help="don't export the shipped weights to ONNX")
    p.add_argument("--skip-opencv", action="store_true", help="leave out cv2.dnn (the slowest CPU backend)")
    p.add_argument("--skip-streaming", action="store_true", help="don't measure the streaming loop's overhead")
    p.add_argument("--stream-frames", type=int, default=20, metavar="N",
                   help="frames run through the streaming loop to measure its overhead over raw inference "
                        "(default: 20)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.threads < 1:
        return _fail("--iters and --threads must be ≥ 1, --warmup ≥ 0")
    try:
        split_models(args.model)
    except ValueError as e:
        return _fail(str(e))
    if args.json:
        from derain_edge.outputs import check_writable, os_error_line

        try:  # before minutes of benchmarking, not after
            check_writable(args.json)
        except OSError as e:
            return _fail(f"--json {os_error_line(e)}")
    try:
        report = run_bench(args)
    except (RuntimeErrorBase, ValueError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted; nothing written", file=sys.stderr)
        return 130
    print(summary(report))
    if args.json:
        try:
            atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        except OSError as e:
            from derain_edge.outputs import os_error_line

            return _fail(f"--json {os_error_line(e)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
