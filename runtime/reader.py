"""FrameReader: runs a Source on its own thread so capture never waits for inference.

Live sources (cameras, RTSP): only the **latest** frame is kept; a frame replaced before the consumer took it is
dropped and counted — the consumer always works on "now", latency never piles up. When a live stream fails, the
reader reconnects with exponential back-off and gives up after `max_retries` failed attempts in a row.
Files (videos, images, the demo): every frame is delivered through a small bounded queue (the reader waits for the
consumer), so nothing is dropped and memory stays flat however long the file is.
Frames that come back unusable (ImageError from the source) are skipped and counted, never fatal.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from derain_edge.imageio import ImageError

from .errors import SourceError
from .sources import Source

log = logging.getLogger(__name__)


@dataclass
class Frame:
    index: int          # 0-based count of frames delivered by the source (dropped ones included)
    image: np.ndarray   # BGR uint8
    time: float         # time.perf_counter() when it was read


@dataclass
class ReaderStats:
    read: int = 0        # frames read from the source
    delivered: int = 0   # frames handed to the consumer
    dropped: int = 0     # live frames replaced by a newer one before the consumer took them
    corrupt: int = 0     # frames/images that could not be used (skipped)
    reconnects: int = 0  # successful re-opens after a drop
    errors: list[str] = field(default_factory=list)  # the last few problems, newest last

    def note(self, msg: str) -> None:
        self.errors = (self.errors + [msg])[-5:]


class FrameReader:
    """Iterate it (``for frame in reader``) or call get(); ends when the source ends or is lost for good."""

    _END = object()

    def __init__(self, source: Source, latest_only: bool | None = None, reconnect: bool | None = None,
                 max_retries: int = 10, backoff: tuple[float, float] = (0.5, 8.0), queue_size: int = 4,
                 max_frames: int | None = None):
        self.source = source
        self.latest_only = source.live if latest_only is None else latest_only
        self.reconnect = source.live if reconnect is None else reconnect
        self.max_retries = int(max_retries)
        self.backoff = backoff
        self.max_frames = max_frames
        self.stats = ReaderStats()
        self.ended_reason: str | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._latest = None
        self._ended = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._streak = 0  # reconnect attempts since the last good frame
        self.source.open()  # the first open fails loudly (SourceError) in the caller's thread

    # ------------------------------------------------------------------ consumer side
    def start(self) -> "FrameReader":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
            self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (the newest one for live sources); None once the source has ended."""
        self.start()
        if self.latest_only:
            with self._cond:
                if not self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout):
                    raise TimeoutError("no frame within the timeout")
                item, self._latest = (self._latest if self._latest is not None else self._END), None
        else:
            item = self._queue.get(timeout=timeout)
            if item is self._END:
                self._queue.put(self._END)  # later get() calls see the end too
        if item is self._END:
            return None
        self.stats.delivered += 1
        return item

    def __iter__(self):
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread and closes the source (safe to call twice, from Ctrl-C handlers too)."""
        self._stop.set()
        if not self.latest_only:
            try:  # unblock a reader waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        self.source.close()

    def __enter__(self) -> "FrameReader":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ reader thread
    def _publish(self, item) -> None:
        if self.latest_only:
            with self._cond:
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = item
                self._cond.notify_all()
        else:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _run(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and index >= self.max_frames:
                    self.ended_reason = "max_frames"
                    break
                try:
                    img = self.source.read()
                except ImageError as e:
                    self.stats.corrupt += 1
                    self.stats.note(str(e))
                    index += 1
                    continue
                if img is None:
                    if self.reconnect and self._reopen():
                        continue
                    self.ended_reason = self.ended_reason or "end"
                    break
                self.stats.read += 1
                self._streak = 0
                self._publish(Frame(index, img, time.perf_counter()))
                index += 1
        except Exception as e:  # a source bug must end the stream visibly, not hang the consumer
            self.ended_reason = f"error: {type(e).__name__}: {e}"
            self.stats.note(self.ended_reason)
            log.exception("frame reader failed")
        finally:
            self._publish_end()

    def _publish_end(self) -> None:
        if self.latest_only:
            with self._cond:
                self._ended = True  # the last frame, if not taken yet, is still delivered
                self._cond.notify_all()
        else:
            try:
                self._queue.put(self._END, timeout=1.0)
            except queue.Full:  # the consumer stopped taking frames (stop() drains the queue)
                pass

    def _reopen(self) -> bool:
        """Closes and reopens the source with exponential back-off; False after max_retries attempts in a row that
        gave no frame (a stream that "opens" but never delivers counts as failing too)."""
        base, cap = self.backoff
        while self._streak < self.max_retries:
            self._streak += 1
            attempt = self._streak
            self.source.close()
            if self._stop.wait(min(base * 2 ** (attempt - 1), cap)):
                return False
            try:
                self.source.open()
            except SourceError as e:
                self.stats.note(f"reconnect {attempt}/{self.max_retries}: {e}")
                log.warning("stream lost; reconnect %d/%d failed: %s", attempt, self.max_retries, e)
                continue
            self.stats.reconnects += 1
            log.info("stream reopened (attempt %d)", attempt)
            return True
        self.ended_reason = f"lost: no frames after {self.max_retries} reconnect attempts"
        return False
