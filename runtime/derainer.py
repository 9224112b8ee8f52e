"""Derainer: OpenCV BGR uint8 frame in, derained BGR uint8 frame out, whatever engine runs underneath.

    from runtime import Derainer
    derain = Derainer()                                   # shipped LPNet weights, fastest engine installed
    derain = Derainer("exports/lpnet_fp32.onnx")          # onnxruntime (CUDA/TensorRT providers when present)
    clean = derain(frame)                                 # frame: H×W×3 BGR uint8 (gray, BGRA, 16-bit accepted)
    outs = derain.batch(frames)
    with derain.start_async(maxsize=4) as worker:         # inference on a background thread
        future = worker.submit(frame); clean = future.result()

Frames of any size: a dynamic-size engine gets the frame as it is (padded up to `align` when the engine asks for
multiples); a fixed-size artifact (TFLite, CoreML enumerated) gets it padded to the smallest size that holds it, or
tiled with overlap and blended when it is larger (``runtime.tiling``).

``backend="auto"`` (the default) with a model name or weights exports them to ONNX once (cached) and runs the
fastest engine installed, with as many threads as there are idle cores (``runtime.auto``); ``describe()`` says
which engine runs and why.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from derain_edge.imageio import ImageError, to_rgb_uint8

from .backends import Backend
from .loader import open_backend
from .stabilize import TemporalStabilizer
from .tiling import run_fitted


class Derainer:
    """model: None (shipped LPNet), a model name, weights, an nn.Module or an exported artifact (see runtime.loader).
    backend: "auto" or one of runtime.loader.BACKENDS. overlap: tile overlap in pixels for fixed-size artifacts.
    stabilize: 0/False = off, or the TemporalStabilizer strength (True = 0.6) for fixed cameras.
    gate: the rain gate (derain_edge.gate), on by default: the model's output is kept where it removed rain and the
    input frame elsewhere, so dry frames come back nearly untouched; False gives the engine's raw output."""

    def __init__(self, model=None, backend: str = "auto", *, precision: str | None = None,
                 device: str | None = None, threads: int | None = None, overlap: int = 64, align: int = 1,
                 stabilize: float | bool = False, model_name: str = "lpnet", gate: bool = True):
        self.engine: Backend = open_backend(model, backend, precision=precision, device=device, threads=threads,
                                            model_name=model_name)
        if overlap < 0:
            raise ValueError(f"overlap must be ≥ 0, got {overlap}")
        self.overlap = int(overlap)
        self.align = max(1, int(align))
        strength = 0.6 if stabilize is True else float(stabilize or 0.0)
        self.stabilizer = TemporalStabilizer(strength) if strength > 0 else None
        self.gate = bool(gate)
        self._lock = threading.Lock()  # engines are not re-entrant; async + direct calls may share one Derainer

    # ------------------------------------------------------------------ public API
    @property
    def backend(self) -> str:
        return self.engine.label

    def describe(self) -> str:
        """One line: the engine, its threads and how it was chosen (derain-run prints it at start)."""
        from .auto import describe

        return describe(self.engine)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Derains one OpenCV frame; returns H×W×3 BGR uint8 (input gray/BGRA/16-bit frames are converted)."""
        rgb = self._to_rgb(frame)
        out = self._derain_rgb_batch(rgb[None])[0][:, :, ::-1]
        out = np.ascontiguousarray(out)
        return self.stabilizer(out) if self.stabilizer is not None else out

    def derain_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 RGB uint8 in and out (for code that already works in RGB; no stabilisation)."""
        return self._derain_rgb_batch(self._to_rgb(rgb, bgr=False)[None])[0]

    def batch(self, frames) -> list[np.ndarray]:
        """Derains a list of frames; frames of the same size go through the engine together where it takes N > 1."""
        rgbs = [self._to_rgb(f, f"frame {i}") for i, f in enumerate(frames)]
        out: list[np.ndarray | None] = [None] * len(rgbs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(rgbs):
            groups.setdefault(r.shape[:2], []).append(i)
        for idx in groups.values():
            res = self._derain_rgb_batch(np.stack([rgbs[i] for i in idx]))
            for i, r in zip(idx, res):
                out[i] = np.ascontiguousarray(r[:, :, ::-1])
        if self.stabilizer is not None:
            out = [self.stabilizer(o) for o in out]
        return out

    def start_async(self, maxsize: int = 4) -> "AsyncDerainer":
        """A background worker with a bounded queue: submit() blocks (or raises queue.Full) when it is full."""
        return AsyncDerainer(self, maxsize)

    def run_nchw(self, x: np.ndarray) -> np.ndarray:
        """N×3×H×W float32 [0, 1] → same, fitting the engine's allowed sizes (pad/tile) and batch limit."""
        n, _, h, w = x.shape
        eng = self.engine
        with self._lock:
            if eng.max_batch is not None and n > eng.max_batch:
                return np.concatenate([self._fit(x[i:i + eng.max_batch]) for i in range(0, n, eng.max_batch)])
            return self._fit(x)

    def close(self) -> None:
        self.engine.close()

    def __repr__(self) -> str:
        return f"Derainer({self.engine!r})"

    # ------------------------------------------------------------------ internals
    def _to_rgb(self, frame, name: str = "frame", bgr: bool = True) -> np.ndarray:
        if frame is None:
            raise ImageError(f"{name}: got None (a failed cv2.imread / VideoCapture.read?)")
        if not isinstance(frame, np.ndarray):
            raise ImageError(f"{name}: expected a numpy image array, got {type(frame).__name__}")
        return to_rgb_uint8(frame, name, bgr=bgr)

    def _derain_rgb_batch(self, rgb: np.ndarray) -> np.ndarray:
        x = rgb.transpose(0, 3, 1, 2).astype(np.float32) * (1.0 / 255.0)
        y = self.run_nchw(np.ascontiguousarray(x))
        out = np.clip(np.round(y.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
        if self.gate:
            from derain_edge.gate import apply_gate

            out = np.stack([apply_gate(i, o) for i, o in zip(rgb, out)])
        return out

    def _fit(self, x: np.ndarray) -> np.ndarray:
        """The one fixed-size policy (derain_edge.engines.tiling.run_fitted), also what export measures with."""
        return run_fitted(self.engine, x, self.overlap, self.align)


class AsyncDerainer:
    """Runs a Derainer on its own thread. Futures resolve in submission order; errors arrive through the future.

    submit() copies the frame, so the caller may reuse its buffer at once (a camera loop reading into one array).
    No wait is unbounded by a dead worker: submit() and close() check that the worker is alive, and close(timeout)
    cancels the futures it could not finish (their result() raises CancelledError instead of waiting forever).
    """

    _STOP = object()

    def __init__(self, derainer: Derainer, maxsize: int = 4):
        if maxsize < 1:
            raise ValueError(f"maxsize must be ≥ 1, got {maxsize}")
        self.derainer = derainer
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.thread = threading.Thread(target=self._work, name="derainer-async", daemon=True)
        self.closed = False
        self.thread.start()

    def submit(self, frame: np.ndarray, block: bool = True, timeout: float | None = None) -> Future:
        """Queues a copy of `frame`; with block=False raises queue.Full when the worker is `maxsize` frames behind,
        with a timeout raises queue.Full after it."""
        if self.closed:
            raise RuntimeError("AsyncDerainer is closed")
        fut: Future = Future()
        item = (np.array(frame, copy=True) if isinstance(frame, np.ndarray) else frame, fut)
        if not block:
            self.queue.put(item, block=False)
            return fut
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self.thread.is_alive() or self.closed:
                raise RuntimeError("AsyncDerainer is closed")
            wait = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                self.queue.put(item, timeout=wait)
                return fut
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._STOP:
                return
            frame, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(self.derainer(frame))
            except BaseException as e:  # delivered to the caller through the future
                fut.set_exception(e)

    def close(self, timeout: float | None = None) -> None:
        """Finishes the queued frames and stops the worker; after `timeout` seconds (None: however long the queued
        frames take) the frames not started are cancelled and the worker is left to finish the one it is on."""
        if self.closed:
            return
        self.closed = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.thread.is_alive():
            try:
                self.queue.put(self._STOP, timeout=0.1)
                break
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    break
        self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self._cancel_pending()

    def _cancel_pending(self) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not self._STOP:
                item[1].cancel()
        try:  # the worker stops after the frame it is on
            self.queue.put_nowait(self._STOP)
        except queue.Full:
            pass

    def __enter__(self) -> "AsyncDerainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
