"""Load test: N simulated camera streams against one derain-serve (Triton) vs N in-process Derainers, loopback only.

    python benchmarks/serve_load.py                         # N = 1, 4, 16 at 640x480, 8 frames per stream
    python benchmarks/serve_load.py --streams 1,4 --frames 4 --json runs/serve_load.json --markdown
    python benchmarks/serve_load.py --smoke                 # seconds: N = 1, 2 at 64x48, 2 frames each

Each stream is a thread with its own client (``runtime.triton_client.RemoteDerainer``) sending its frames back to
back, as a camera feeding a detector would; bounded by --frames per stream and --max-seconds per N. Reported per N:
frames/s in total, p50/p99 latency per frame, the batch sizes the server formed (Triton's own statistics, as deltas),
and errors (must be 0). The same N then run as N threads each with its own in-process ``Derainer``.

Then two fault checks, where no frame may be lost silently — every request returns its frame or an error that its
client reports: a client that gives up mid-request (its timeout far below one inference), while other streams go on;
and a server restarted (SIGTERM, new process on the same ports) while streams keep sending with retries.
The server is a separate process (``python -m runtime.serve``), as in production.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

SMOKE = ["--streams", "1,2", "--frames", "2", "--size", "64x48", "--no-restart"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="1,4,16", help="comma-separated N (default: %(default)s)")
    p.add_argument("--frames", type=int, default=8, help="frames per stream (default: %(default)s)")
    p.add_argument("--size", default="640x480", help="WxH (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="per N and mode: streams stop sending after this")
    p.add_argument("--threads", type=int, default=1, help="inference threads of the server's and each in-process "
                   "Derainer (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=16, help="server's max batch (default: %(default)s)")
    p.add_argument("--queue-delay-us", type=int, default=5000, help="server's batching delay (default: %(default)s)")
    p.add_argument("--protocol", choices=("http", "grpc"), default="grpc")
    p.add_argument("--model", default=None, help="Derainer model (default: the shipped LPNet)")
    p.add_argument("--no-restart", action="store_true", help="skip the server-restart fault check")
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    args = p.parse_args(SMOKE + [a for a in argv if a != "--smoke"] if "--smoke" in argv else argv)
    args.smoke = "--smoke" in argv
    w, h = (int(v) for v in args.size.lower().split("x"))
    args.hw = (h, w)
    args.ns = [int(n) for n in args.streams.split(",") if n.strip()]
    return args


def frames_for(n_streams: int, frames: int, hw) -> list[list[np.ndarray]]:
    """Distinct rainy-looking frames per stream (noise + bright streaks; the cost does not depend on content)."""
    rng = np.random.default_rng(0)
    out = []
    for s in range(n_streams):
        base = rng.integers(40, 200, (*hw, 3), dtype=np.uint8)
        base[:, (s % 5)::9] = 245
        out.append([np.roll(base, 3 * i, axis=0) for i in range(frames)])
    return out


def pct(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


# ------------------------------------------------------------------------------------------------ the server
class ServerProcess:
    def __init__(self, args, workdir: Path):
        from runtime.serve import free_port

        self.args, self.workdir = args, workdir
        self.ports = [free_port(), free_port(), free_port()]
        self.proc = None
        self.starts = 0

    @property
    def url(self) -> str:
        port = self.ports[0] if self.args.protocol == "http" else self.ports[1]
        return f"{self.args.protocol}://127.0.0.1:{port}"

    def start(self, timeout: float = 180.0) -> None:
        self.starts += 1
        ready = self.workdir / f"ready{self.starts}.txt"
        cmd = [sys.executable, "-m", "runtime.serve", "--threads", str(self.args.threads),
               "--http-port", str(self.ports[0]), "--grpc-port", str(self.ports[1]),
               "--metrics-port", str(self.ports[2]), "--max-batch", str(self.args.max_batch),
               "--queue-delay-us", str(self.args.queue_delay_us), "--startup-timeout", str(timeout),
               "--log-file", str(self.workdir / f"triton{self.starts}.log"), "--ready-file", str(ready)]
        if self.args.model:
            cmd += ["--model", self.args.model]
        self.out = open(self.workdir / f"serve{self.starts}.out", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OMP_NUM_THREADS": str(self.args.threads)})
        deadline = time.monotonic() + timeout + 30
        while not (ready.exists() and ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.workdir / f"serve{self.starts}.out").read_text()[-2000:]
                raise RuntimeError(f"derain-serve did not start:\n{tail}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        self.proc = None
        self.out.close()
        return rc


def batch_counts(url: str) -> Counter:
    from runtime.triton_client import RemoteDerainer

    with RemoteDerainer(url, wait_ready=30) as c:
        stats = c.statistics()["model_stats"][0]
    return Counter({int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])})


# ------------------------------------------------------------------------------------------------- the runs
def run_streams(make_client, streams, max_seconds: float) -> dict:
    """Each stream in its own thread: frames back to back; returns totals, latencies and errors."""
    lat, errors, done = [], [], [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + max_seconds

    def work(frames):
        try:
            client = make_client()
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
            return
        for f in frames:
            if time.monotonic() > stop_at:
                break
            t0 = time.perf_counter()
            try:
                out = client(f)
                assert out.shape == f.shape and out.dtype == np.uint8
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                lat.append(1000 * (time.perf_counter() - t0))
                done[0] += 1
        close = getattr(client, "close", None)
        if close:
            close()

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in streams]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 120)
    wall = time.perf_counter() - t0
    hung = sum(t.is_alive() for t in threads)
    if hung:
        errors.append(f"{hung} streams still running after {max_seconds + 120:.0f} s")
    return {"frames": done[0], "seconds": wall, "fps": done[0] / wall if wall else 0.0, "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99), "errors": len(errors), "error_samples": errors[:3]}


def fault_disconnect(url: str, frames, args) -> dict:
    """A client whose timeout is far below one inference gives up mid-request while 2 other streams go on."""
    from runtime.triton_client import RemoteDerainer, ServerError

    impatient = {"sent": 0, "reported": 0, "returned": 0}
    c = RemoteDerainer(url, timeout=0.001, wait_ready=30)
    for f in frames[0][:2]:
        impatient["sent"] += 1
        try:
            c(f)
            impatient["returned"] += 1
        except ServerError:
            impatient["reported"] += 1
    c.close()
    others = run_streams(lambda: RemoteDerainer(url, timeout=120, wait_ready=30), frames[1:3], args.max_seconds)
    after = run_streams(lambda: RemoteDerainer(url, timeout=120, wait_ready=30), [frames[0][:1]], args.max_seconds)
    return {"impatient_client": impatient, "other_streams": {k: others[k] for k in ("frames", "errors")},
            "server_after": {k: after[k] for k in ("frames", "errors")},
            "lost_silently": impatient["sent"] - impatient["reported"] - impatient["returned"]}


def fault_restart(server: ServerProcess, frames, args) -> dict:
    """4 streams keep sending (each request retried for up to 120 s) while the server is stopped and started again;
    each stream goes on until it has had 2 frames answered by the new server."""
    from runtime.triton_client import RemoteDerainer

    counts = {"sent": 0, "returned": 0, "reported": 0, "retried": 0, "returned_after_restart": 0}
    lock = threading.Lock()
    restarted = threading.Event()
    kinds: Counter = Counter()
    deadline = time.monotonic() + args.max_seconds + 300

    def work(stream):
        c = RemoteDerainer(server.url, timeout=60, retry_for=120, wait_ready=30)
        after, i = 0, 0
        while after < 2 and time.monotonic() < deadline:
            f = stream[i % len(stream)]
            i += 1
            with lock:
                counts["sent"] += 1
            try:
                out = c(f)
                ok = out.shape == f.shape
                with lock:
                    counts["returned" if ok else "reported"] += 1
                if ok and restarted.is_set():
                    after += 1
                    with lock:
                        counts["returned_after_restart"] += 1
            except Exception as e:  # noqa: BLE001 - a reported error, not a silent loss
                with lock:
                    counts["reported"] += 1
                    kinds[str(e)[:160]] += 1
        with lock:
            counts["retried"] += c.retries
        c.close()

    threads = [threading.Thread(target=work, args=(s[:3],), daemon=True) for s in frames[:4]]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    with lock:
        sent_before = counts["sent"]
    rc = server.stop()
    server.start()
    restarted.set()
    restart_s = time.perf_counter() - t0
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    return {**counts, "sent_before_restart": sent_before, "server_exit_code": rc,
            "restart_seconds": round(restart_s, 1),
            "lost_silently": counts["sent"] - counts["returned"] - counts["reported"],
            "hung_streams": sum(t.is_alive() for t in threads), "errors_reported": dict(kinds.most_common(3))}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import pytriton.triton  # noqa: F401
        import tritonclient.grpc  # noqa: F401
    except ImportError as e:
        print(f"skipped: nvidia-pytriton/tritonclient not installed ({e}); pip install -c constraints.txt "
              "'derain-edge[serve]'")
        return 0
    from runtime.serve import stub_env_problem

    problem = stub_env_problem()
    if problem:
        print(f"skipped: {problem}")
        return 0
    from runtime import Derainer
    from runtime.triton_client import RemoteDerainer

    results = {"size": f"{args.hw[1]}x{args.hw[0]}", "frames_per_stream": args.frames, "threads": args.threads,
               "max_batch": args.max_batch, "queue_delay_us": args.queue_delay_us, "protocol": args.protocol,
               "cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "rows": []}
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        server = ServerProcess(args, Path(tmp))
        t0 = time.perf_counter()
        server.start()
        results["server_start_seconds"] = round(time.perf_counter() - t0, 1)
        try:
            warm = RemoteDerainer(server.url, timeout=120, wait_ready=30)
            warm(frames_for(1, 1, args.hw)[0][0])  # first inference initialises the engine
            warm.close()
            for n in args.ns:
                streams = frames_for(n, args.frames, args.hw)
                before = batch_counts(server.url)
                row = run_streams(lambda: RemoteDerainer(server.url, timeout=120, wait_ready=30), streams,
                                  args.max_seconds)
                formed = batch_counts(server.url) - before
                results["rows"].append({"mode": "server", "streams": n, **row,
                                        "batches": dict(sorted(formed.items()))})
                print(_line(results["rows"][-1]), flush=True)
                # the same N as in-process engines, one per stream (engines made before the clock starts)
                engines = [Derainer(args.model, threads=args.threads) for _ in range(n)]
                engines[0](streams[0][0])
                pool = iter(engines)
                row = run_streams(lambda: next(pool), streams, args.max_seconds)
                results["rows"].append({"mode": "in-process", "streams": n, **row, "batches": {}})
                print(_line(results["rows"][-1]), flush=True)
                for e in engines:
                    e.close()
            faults = frames_for(4, max(3, args.frames), args.hw)
            results["disconnect"] = fault_disconnect(server.url, faults, args)
            print(f"disconnect mid-request: {json.dumps(results['disconnect'])}", flush=True)
            if not args.no_restart:
                results["restart"] = fault_restart(server, faults, args)
                print(f"server restart under load: {json.dumps(results['restart'])}", flush=True)
        finally:
            results["server_exit_code"] = server.stop()
    if args.markdown:
        print(markdown(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    bad = sum(r["errors"] for r in results["rows"]) + results["disconnect"]["lost_silently"] + \
        results["disconnect"]["other_streams"]["errors"] + results["disconnect"]["server_after"]["errors"] + \
        (results["restart"]["lost_silently"] + results["restart"]["hung_streams"] if "restart" in results else 0)
    print(f"errors+silent losses: {bad}; server exit code {results['server_exit_code']}")
    return 0 if bad == 0 else 1


def _line(r) -> str:
    return (f"{r['mode']:<10} N={r['streams']:<3} {r['frames']:>4} frames {r['seconds']:6.1f} s  {r['fps']:6.2f} "
            f"frames/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}  "
            f"batches {r['batches']}")


def markdown(results) -> str:
    rows = ["| N streams | mode | frames | frames/s total | p50 ms | p99 ms | batch sizes formed (size: count) | errors |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        batches = ", ".join(f"{k}: {v}" for k, v in r["batches"].items()) if r["mode"] == "server" else "—"
        rows.append(f"| {r['streams']} | {r['mode']} | {r['frames']} | {r['fps']:.2f} | {r['p50_ms']:.0f} | "
                    f"{r['p99_ms']:.0f} | {batches} | {r['errors']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
