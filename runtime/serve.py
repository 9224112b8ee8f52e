"""derain-serve: the Derainer on a real Triton Inference Server (NVIDIA PyTriton), for fleets of cameras.

    derain-serve                                         # shipped LPNet on http://127.0.0.1:8000, gRPC :8001
    derain-serve --model exports/lpnet_fp32.onnx --host 0.0.0.0 --max-batch 16
    derain-serve --setup-stub                            # once: the Python environment Triton's backend stub runs in
    derain-run rtsp://cam/stream --server http://127.0.0.1:8000 --headless out/

Triton does the serving (HTTP/gRPC, dynamic batching across streams, health/ready endpoints, statistics, metrics);
this module only binds ``Derainer.batch`` as its model. Wire format: input ``frames`` = N×H×W×3 uint8 BGR (OpenCV
order), output ``derained`` = the same shape and type. Any H×W; requests of the same size in one server batch go
through the engine together.

Two things make PyTriton 0.5.x run on a pyenv/venv Python 3.11 with numpy 2 (docs/serving.md, "Why a stub
environment"): Triton's Python backend stub embeds ``libpython3.X.so`` and finds the *system's* copy first (Debian's
3.11.2 here, under our 3.11.7 standard library → ``'_thread.RLock' object has no attribute '_recursion_count'``),
so the running interpreter's LIBDIR goes first on the server's ``LD_LIBRARY_PATH``; and the stub's pybind11 predates
numpy 2's ABI (tensors arrive zeroed, outputs empty — why PyTriton 0.7 pins numpy<2), so the stub runs in its own small
venv of the *same* interpreter with numpy 1.26 + pyzmq (``--setup-stub``; PyTriton's proxy needs only those two),
while the server process keeps numpy 2. Both are applied by ``DerainServer`` itself.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import RuntimeErrorBase

PROG = "derain-serve"
LOG = logging.getLogger("runtime.serve")

INPUT = "frames"
OUTPUT = "derained"
DEFAULT_MODEL_NAME = "derain"
# what the Python backend stub imports (PyTriton's proxy: numpy + zmq), at versions its pybind11 can read
STUB_PACKAGES = ("numpy==1.26.4", "pyzmq==27.3.0")
STUB_ENV_VAR = "DERAIN_TRITON_STUB_ENV"
INSTALL_HINT = 'pip install -c constraints.txt "derain-edge[serve]"'


class ServeError(RuntimeErrorBase):
    """The server cannot start or serve (PyTriton missing, stub environment missing, port taken, timeout…)."""


# ---------------------------------------------------------------------------------------------- stub environment
def default_stub_env() -> Path:
    """$DERAIN_TRITON_STUB_ENV, else <this venv>/triton-stub (inside .venv, so `make clean` removes it too)."""
    return Path(os.environ.get(STUB_ENV_VAR) or Path(sys.prefix) / "triton-stub")


def _stub_python(env: Path) -> Path:
    return Path(env) / "bin" / "python"


def stub_env_problem(env: Path | None = None, timeout: float = 60.0) -> str | None:
    """None when `env` can host the backend stub, else why not (one line)."""
    env = Path(env or default_stub_env())
    py = _stub_python(env)
    if not py.exists():
        return f"no stub environment at {env} (run: {PROG} --setup-stub)"
    probe = ("import sys, numpy, zmq; print('%d.%d.%d' % sys.version_info[:3], numpy.__version__)")
    try:
        r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"stub environment {env} does not run: {e}"
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"stub environment {env} lacks numpy/pyzmq ({last}); run: {PROG} --setup-stub"
    version, numpy_version = r.stdout.split()
    here = "%d.%d.%d" % sys.version_info[:3]
    if version != here:
        return (f"stub environment {env} is Python {version}, this interpreter is {here}; recreate it: "
                f"{PROG} --setup-stub --force")
    if int(numpy_version.split(".")[0]) >= 2:
        return (f"stub environment {env} has numpy {numpy_version}; the backend stub needs numpy<2 "
                f"(run: {PROG} --setup-stub --force)")
    return None


def setup_stub_env(env: Path | None = None, force: bool = False, timeout: float = 600.0) -> Path:
    """Creates the stub's venv from this very interpreter (same patch version as the libpython the stub loads) and
    installs STUB_PACKAGES from PyPI with pip. Idempotent: an environment that already works is left alone."""
    env = Path(env or default_stub_env())
    if not force and stub_env_problem(env) is None:
        return env
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [[base, "-m", "venv", "--clear", str(env)],
             [str(_stub_python(env)), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:",
              *STUB_PACKAGES]]
    for cmd in steps:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ServeError(f"setting up the stub environment timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
        if r.returncode != 0:
            raise ServeError(f"setting up the stub environment failed: {' '.join(cmd)}: "
                             f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    problem = stub_env_problem(env)
    if problem:
        raise ServeError(problem)
    return env


def libpython_dir() -> str | None:
    """The folder holding the running interpreter's shared libpython, or None for a static build."""
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if libdir and name and (Path(libdir) / name).exists():
        return libdir
    return None


def require_pytriton():
    try:
        import pytriton.triton  # noqa: F401
        from pytriton.server import triton_server  # noqa: F401
    except ImportError as e:
        raise ServeError(f"nvidia-pytriton is not installed ({e}); run: {INSTALL_HINT}") from e


# ---------------------------------------------------------------------------------------------------- the server
class DerainServer:
    """A Triton server (PyTriton) serving one Derainer as model `model_name`.

        with DerainServer(Derainer("exports/lpnet_fp32.onnx"), http_port=8000) as server:
            print(server.url)            # http://127.0.0.1:8000
            server.wait(stop_event)      # or do other work; stop() / leaving the block shuts Triton down

    derainer: a Derainer (or anything with .batch(list of BGR frames) and .backend), or None to build one from
    `model`/`backend`/`precision`/`threads`. Ports of 0 pick free ones. max_batch: the most frames one model call
    gets; queue_delay_us: how long Triton holds a request to batch it with others.
    """

    def __init__(self, derainer=None, *, model=None, backend: str = "auto", precision: str | None = None,
                 threads: int | None = None, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001,
                 metrics_port: int = 8002, model_name: str = DEFAULT_MODEL_NAME, model_version: int = 1,
                 max_batch: int = 8, queue_delay_us: int = 2000, stub_env: Path | None = None,
                 log_file: str | Path | None = None, exit_timeout_s: int = 5):
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        if queue_delay_us < 0:
            raise ValueError(f"queue_delay_us must be ≥ 0, got {queue_delay_us}")
        if derainer is None:
            from .derainer import Derainer

            derainer = Derainer(model, backend, precision=precision, threads=threads)
        self.derainer = derainer
        self.host = host
        self.ports = {"http": http_port or free_port(host), "grpc": grpc_port or free_port(host),
                      "metrics": metrics_port or free_port(host)}
        self.model_name, self.model_version = model_name, int(model_version)
        self.max_batch, self.queue_delay_us = int(max_batch), int(queue_delay_us)
        self.stub_env = Path(stub_env or default_stub_env())
        self.log_file = log_file
        self.exit_timeout_s = int(exit_timeout_s)
        self._triton = None
        self._lock = threading.Lock()
        self.calls = 0                      # model executions
        self.frames_per_call: Counter = Counter()    # batch sizes (frames) the server formed
        self.requests_per_call: Counter = Counter()  # requests merged into one execution
        self.errors = 0

    # -------------------------------------------------------------- addresses
    @property
    def url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.ports['http']}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{_client_host(self.host)}:{self.ports['grpc']}"

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 120.0) -> "DerainServer":
        """Starts tritonserver, loads the model and waits until it is ready (ServeError after `timeout` s).
        Call it from a thread that outlives the server (the main thread): Linux ends the server with that thread."""
        require_pytriton()
        problem = stub_env_problem(self.stub_env)
        if problem:
            raise ServeError(problem)
        for name, port in self.ports.items():
            if not port_is_free(self.host, port):
                raise ServeError(f"{name} port {port} on {self.host} is in use")
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.server import triton_server as ts
        from pytriton.triton import Triton, TritonConfig

        stub_env = self.stub_env
        ts.get_triton_python_backend_python_env = lambda: stub_env  # the stub's Python (numpy<2 + pyzmq)
        config = TritonConfig(http_address=self.host, http_port=self.ports["http"], grpc_address=self.host,
                              grpc_port=self.ports["grpc"], metrics_port=self.ports["metrics"],
                              exit_timeout_secs=self.exit_timeout_s,
                              log_file=Path(self.log_file) if self.log_file else None)
        triton = Triton(config=config)
        triton.bind(model_name=self.model_name, model_version=self.model_version, infer_func=self._infer,
                    inputs=[Tensor(name=INPUT, dtype=np.uint8, shape=(-1, -1, 3))],
                    outputs=[Tensor(name=OUTPUT, dtype=np.uint8, shape=(-1, -1, 3))],
                    config=ModelConfig(max_batch_size=self.max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=self.queue_delay_us)))
        self._triton = triton
        # run() in this thread: PyTriton starts tritonserver with PR_SET_PDEATHSIG, which Linux ties to the *thread*
        # that forked it — started from a helper thread, the server would get SIGTERM as soon as that thread ended.
        # A watchdog stops it when it is not ready within `timeout` (run() then raises here).
        expired = threading.Event()

        def watchdog():
            expired.set()
            LOG.warning("Triton not ready after %.0f s; stopping it", timeout)
            self.stop()

        timer = threading.Timer(timeout, watchdog)
        timer.daemon = True
        timer.start()
        try:
            with _libpython_first():
                triton.run()
        except Exception as e:
            self.stop()
            why = f"did not get ready in {timeout:.0f} s" if expired.is_set() else f"{type(e).__name__}: {e}"
            raise ServeError(f"Triton server {why}" + (f" (server log: {self.log_file})" if self.log_file else ""))
        finally:
            timer.cancel()
        if expired.is_set():
            raise ServeError(f"Triton server did not get ready in {timeout:.0f} s")
        LOG.info("serving %s v%d on %s and %s", self.model_name, self.model_version, self.url, self.grpc_url)
        return self

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def wait(self, stop: threading.Event, poll_s: float = 1.0) -> str:
        """Blocks until `stop` is set ('stopped') or the server dies ('server died')."""
        while not stop.wait(poll_s):
            if not self.is_alive():
                return "server died"
        return "stopped"

    def stop(self) -> None:
        """Shuts Triton down (it finishes in-flight requests for up to exit_timeout_s) and frees the ports."""
        triton, self._triton = self._triton, None
        if triton is not None:
            try:
                triton.stop()
            except Exception as e:  # noqa: BLE001 - shutting down must not raise over the original error
                LOG.warning("stopping Triton: %s", e)

    def __enter__(self) -> "DerainServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def batch_stats(self) -> dict:
        with self._lock:
            return {"calls": self.calls, "errors": self.errors,
                    "frames_per_call": dict(sorted(self.frames_per_call.items())),
                    "requests_per_call": dict(sorted(self.requests_per_call.items()))}

    # -------------------------------------------------------------- the model
    def _infer(self, requests):
        """PyTriton callback: a list of requests (each N×H×W×3 uint8) → one response per request, in order."""
        frames, counts = [], []
        for r in requests:
            x = np.asarray(r[INPUT])
            counts.append(len(x))
            frames.extend(x)
        try:
            outs = self.derainer.batch(frames)
        except Exception:
            with self._lock:
                self.errors += 1
            raise
        with self._lock:
            self.calls += 1
            self.frames_per_call[len(frames)] += 1
            self.requests_per_call[len(requests)] += 1
        responses, i = [], 0
        for n, r in zip(counts, requests):
            shape = np.asarray(r[INPUT]).shape
            block = np.stack(outs[i:i + n]) if n else np.zeros(shape, np.uint8)
            responses.append({OUTPUT: block})
            i += n
        return responses


class _libpython_first:
    """Context manager: the running interpreter's libpython folder first on LD_LIBRARY_PATH while tritonserver is
    spawned (it and its backend stubs inherit it), then the old value back."""

    def __enter__(self):
        self.old = os.environ.get("LD_LIBRARY_PATH")
        libdir = libpython_dir()
        if libdir:
            parts = [p for p in (self.old or "").split(os.pathsep) if p and p != libdir]
            os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *parts])
        return self

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = self.old


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", int(port)))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_client_host(host), 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:7]))
    p.add_argument("--model", default=None, metavar="ARTIFACT",
                   help="anything Derainer accepts: weights, .onnx, .tflite, .engine, Jetson bundle, model name "
                        "(default: the shipped LPNet)")
    p.add_argument("--backend", default="auto", help="Derainer backend (default: %(default)s)")
    p.add_argument("--precision", default=None, help="Derainer precision (fp32 | bf16 | int8 | fp16)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the idle cores)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 = all)")
    p.add_argument("--http-port", type=int, default=8000, help="(default: %(default)s; 0 = a free port)")
    p.add_argument("--grpc-port", type=int, default=8001, help="(default: %(default)s; 0 = a free port)")
    p.add_argument("--metrics-port", type=int, default=8002, help="(default: %(default)s; 0 = a free port)")
    p.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name (default: %(default)s)")
    p.add_argument("--version", type=int, default=1, help="model version (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=8, help="most frames per model call (default: %(default)s)")
    p.add_argument("--queue-delay-us", type=int, default=2000,
                   help="dynamic batching: µs a request may wait for others (default: %(default)s)")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to get ready (default: %(default)s)")
    p.add_argument("--log-file", default=None, help="tritonserver's log (default: printed on stdout)")
    p.add_argument("--stub-env", default=None, type=Path,
                   help=f"the backend stub's Python environment (default: ${STUB_ENV_VAR} or <venv>/triton-stub)")
    p.add_argument("--setup-stub", action="store_true", help="create the stub environment (pip, PyPI) and exit")
    p.add_argument("--force", action="store_true", help="with --setup-stub: recreate it")
    p.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)  # tests: written once the model is ready
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s")
    for noisy in ("pytriton", "tritonclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():
            os._exit(130)  # a second signal while shutting down: leave at once
        print(f"{PROG}: {signal.Signals(signum).name}, shutting down", file=sys.stderr, flush=True)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    server = None
    try:
        if args.setup_stub:
            env = setup_stub_env(args.stub_env, force=args.force)
            print(f"stub environment ready: {env} ({', '.join(STUB_PACKAGES)})")
            return 0
        server = DerainServer(model=args.model, backend=args.backend, precision=args.precision,
                              threads=args.threads, host=args.host, http_port=args.http_port,
                              grpc_port=args.grpc_port, metrics_port=args.metrics_port, model_name=args.name,
                              model_version=args.version, max_batch=args.max_batch,
                              queue_delay_us=args.queue_delay_us, stub_env=args.stub_env, log_file=args.log_file)
        print(f"{PROG}: engine {server.derainer.describe()}", file=sys.stderr, flush=True)
        if stop.is_set():
            return 0
        server.start(timeout=args.startup_timeout)
        print(f"{PROG}: model '{args.name}' v{args.version} ready — HTTP {server.url}, gRPC {server.grpc_url}, "
              f"metrics http://{_client_host(args.host)}:{server.ports['metrics']}/metrics; health "
              f"{server.url}/v2/health/ready", file=sys.stderr, flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(f"{server.url}\n{server.grpc_url}\n")
        ended = server.wait(stop)
        stats = server.batch_stats()
        print(f"{PROG}: {ended}; {stats['calls']} model calls, frames per call {stats['frames_per_call']}, "
              f"errors {stats['errors']}", file=sys.stderr, flush=True)
        return 0 if ended == "stopped" else 1
    except (RuntimeErrorBase, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        for s, h in old.items():
            signal.signal(s, h)


if __name__ == "__main__":
    sys.exit(main())
