"""FrameReader: runs a Source on its own thread so capture never waits for inference.

Live sources (cameras, RTSP): only the **latest** frame is kept; a frame replaced before the consumer took it is
dropped and counted — the consumer always works on "now", latency never piles up. When a live stream fails, the
reader reconnects with exponential back-off and gives up after `max_retries` failed attempts in a row.
Files (videos, images, the demo): every frame is delivered through a small bounded queue (the reader waits for the
consumer), so nothing is dropped and memory stays flat however long the file is.
Frames that come back unusable (ImageError from the source) are skipped and counted, never fatal.

Nothing here waits forever. The end of the stream always reaches the consumer (the reader blocks until the end
marker is delivered or stop() is called); a reader thread that dies with an exception hands it to the consumer
(get() raises SourceError, the original chained), after the frames read before it; the consumer waits in short
slices and checks that the reader is alive, and a source call (read/open) that has not returned after
`stall_timeout` seconds ends the wait with SourceError ("stalled") instead of silence. stop() joins for at most
`timeout` seconds.
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
from .source_base import Source

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
    _NOTHING = object()
    POLL = 0.25  # seconds between the consumer's liveness checks

    def __init__(self, source: Source, latest_only: bool | None = None, reconnect: bool | None = None,
                 max_retries: int = 10, backoff: tuple[float, float] = (0.5, 8.0), queue_size: int = 4,
                 max_frames: int | None = None, stall_timeout: float | None = 30.0):
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
        self.stall_timeout = float(stall_timeout) if stall_timeout else None
        self.error: BaseException | None = None   # what killed the reader thread, handed to the consumer
        self._failure: SourceError | None = None  # raised by every get() once the stream failed or stalled
        self._done = False                        # the consumer has seen the end
        self._busy_since: float | None = None     # time.monotonic() when the thread entered source.read/open
        self._busy_what = ""
        self.source.open()  # the first open fails loudly (SourceError) in the caller's thread

    @property
    def name(self) -> str:
        spec = getattr(self.source, "spec", None)
        return str(getattr(spec, "uri", None) or type(self.source).__name__)

    # ------------------------------------------------------------------ consumer side
    def start(self) -> "FrameReader":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
            self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (the newest one for live sources); None once the source has ended.

        Raises SourceError when the reader thread failed (its exception chained) or the source stalled for
        `stall_timeout` seconds, and TimeoutError when `timeout` passes without a frame.
        """
        self.start()
        if self._failure is not None:
            raise self._failure
        if self._done:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.POLL if deadline is None else max(0.0, min(self.POLL, deadline - time.monotonic()))
            item = self._take(wait)
            if item is self._NOTHING and not self._thread.is_alive():
                item = self._take(0)  # the thread is gone: whatever it published is there now, or nothing is
                if item is self._NOTHING:  # it died without its end marker (it never should): that is the end
                    item = self._END
            if item is self._END:
                self._done = True
                if self.error is not None:
                    self._failure = SourceError(f"{self.name}: the frame reader failed: "
                                                f"{type(self.error).__name__}: {self.error}")
                    self._failure.__cause__ = self.error
                    raise self._failure
                return None
            if item is not self._NOTHING:
                self.stats.delivered += 1
                return item
            self._check_stall()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no frame within the timeout")

    def _take(self, wait: float):
        """A published item, the end marker, or _NOTHING after waiting up to `wait` seconds."""
        if self.latest_only:
            with self._cond:
                self._cond.wait_for(lambda: self._latest is not None or self._ended, wait)
                if self._latest is not None:
                    item, self._latest = self._latest, None
                    return item
                return self._END if self._ended else self._NOTHING
        try:
            return self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return self._NOTHING

    def _check_stall(self) -> None:
        since = self._busy_since
        if self.stall_timeout is None or since is None:
            return
        stuck = time.monotonic() - since
        if stuck > self.stall_timeout:
            self.ended_reason = f"stalled: {self._busy_what} has not returned for {stuck:.0f} s"
            self.stats.note(self.ended_reason)
            self._failure = SourceError(f"{self.name}: no frame for {stuck:.0f} s — the source stalled inside "
                                        f"{self._busy_what} (a hung camera, stream or network drive?)")
            raise self._failure

    def __iter__(self):
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread and closes the source (safe to call twice, from Ctrl-C handlers too); waits at most
        `timeout` seconds. A thread stuck inside the source (a stalled read) is left behind as a daemon and the
        source is not closed under it (releasing a capture another thread is reading from is not safe)."""
        self._stop.set()
        if not self.latest_only:
            try:  # unblock a reader waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: the frame reader is stuck inside %s; leaving it behind", self.name,
                            self._busy_what or "the source")
                return
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
                    img = self._call("read()", self.source.read)
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
        except BaseException as e:  # a source bug must reach the consumer, not hang it
            self.error = e
            self.ended_reason = f"error: {type(e).__name__}: {e}"
            self.stats.note(self.ended_reason)
            log.debug("frame reader failed", exc_info=True)
        finally:
            self._publish_end()

    def _call(self, what: str, fn):
        """Runs a source call with the stall clock running (the consumer watches it)."""
        self._busy_what = what
        self._busy_since = time.monotonic()
        try:
            return fn()
        finally:
            self._busy_since = None

    def _publish_end(self) -> None:
        """Delivers the end marker, however slow the consumer: it waits until there is room or stop() was called
        (a consumer that stopped taking frames calls stop(), which drains the queue)."""
        if self.latest_only:
            with self._cond:
                self._ended = True  # the last frame, if not taken yet, is still delivered
                self._cond.notify_all()
            return
        while not self._stop.is_set():
            try:
                self._queue.put(self._END, timeout=0.1)
                return
            except queue.Full:
                continue

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
                self._call("open()", self.source.open)
            except SourceError as e:
                self.stats.note(f"reconnect {attempt}/{self.max_retries}: {e}")
                log.warning("stream lost; reconnect %d/%d failed: %s", attempt, self.max_retries, e)
                continue
            self.stats.reconnects += 1
            log.info("stream reopened (attempt %d)", attempt)
            return True
        self.ended_reason = f"lost: no frames after {self.max_retries} reconnect attempts"
        return False
