"""Frame sinks: display://N window, video file (.mp4 mp4v, .avi MJPG, .mkv FFV1), image folder, single image, or
none (--headless). Files are written under a temporary name and renamed into place on close(), so an interrupted
run (Ctrl-C) still leaves a complete, playable file and a crash never leaves a half-written one under the final name.
"""
from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from derain_edge.files import atomic_path
from derain_edge.imageio import IMAGE_SUFFIXES

from .errors import SinkError

log = logging.getLogger(__name__)

# pip's OpenCV has no H.264 encoder (docs/toolchain.md §6): mp4v in .mp4, MJPG in .avi, lossless FFV1 in .mkv
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}


class Sink:
    """write(frame) → False when the viewer asked to stop (q / Esc in a window); close() finalizes."""

    count = 0
    threadable = True  # may be written from a worker thread (ThreadedSink); a GUI window may not

    def write(self, frame: np.ndarray) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NullSink(Sink):
    """--headless without an output: frames are counted and discarded (benchmarks, servers)."""

    threadable = False  # nothing to overlap

    def write(self, frame: np.ndarray) -> bool:
        self.count += 1
        return True


class DisplaySink(Sink):
    """An OpenCV window; needs an OpenCV build with a GUI (pip's opencv-python, not -headless) and a display."""

    threadable = False  # HighGUI windows belong to the thread that made them

    def __init__(self, window: str = "derain-edge"):
        self.window = window
        try:
            cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise SinkError("display:// needs an OpenCV with a GUI and a display (this one has none: "
                            "opencv-python-headless, or no $DISPLAY); write to a file (out.mp4) or use --headless"
                            ) from e

    def write(self, frame: np.ndarray) -> bool:
        cv2.imshow(self.window, frame)
        self.count += 1
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.window)
        except cv2.error:
            pass


class VideoSink(Sink):
    """A video file; opened on the first frame (its size fixes the video's), finalized and renamed on close()."""

    def __init__(self, path: str | Path, fps: float = 30.0, fourcc: str | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if fourcc is None and suffix not in FOURCC:
            raise SinkError(f"{self.path}: unknown video type '{suffix}'; use {', '.join(FOURCC)}")
        self.fourcc = fourcc or FOURCC[suffix]
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"{self.path.parent}: cannot create the output folder ({e})") from e
        if not os.access(self.path.parent, os.W_OK):
            raise SinkError(f"{self.path.parent}: output folder is not writable")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp" + self.path.suffix,
                                   dir=self.path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final video gets the usual permissions
        self.tmp = Path(tmp)

    def write(self, frame: np.ndarray) -> bool:
        h, w = frame.shape[:2]
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                self.tmp.unlink(missing_ok=True)
                raise SinkError(f"{self.path}: OpenCV cannot write {self.fourcc} video of {w}x{h} "
                                "(this OpenCV has no such encoder; try .avi (MJPG) or .mkv (FFV1))")
            self.size = (h, w)
        elif (h, w) != self.size:
            raise SinkError(f"{self.path}: frame size changed from {self.size[1]}x{self.size[0]} to {w}x{h} mid-video")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self.writer.write(np.ascontiguousarray(frame))
        self.count += 1
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if self.count:
                os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


class ImageFolderSink(Sink):
    """One image per frame, ``frame_000000.png`` …, each written atomically."""

    def __init__(self, folder: str | Path, suffix: str = ".png"):
        self.folder = Path(folder)
        self.suffix = suffix
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"{self.folder}: cannot create the output folder ({e})") from e

    def write(self, frame: np.ndarray) -> bool:
        _write_image(self.folder / f"frame_{self.count:06d}{self.suffix}", frame)
        self.count += 1
        return True


class ImageFileSink(Sink):
    """A single image file (for one-image sources; a stream keeps overwriting it with the newest frame)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, frame: np.ndarray) -> bool:
        _write_image(self.path, frame)
        self.count += 1
        return True


class ThreadedSink(Sink):
    """Writes through another sink on a worker thread, so a sink that blocks (a hung network drive, a full pipe, a
    stuck encoder) cannot hang the run: write() waits at most `timeout` seconds for room in a `maxsize`-frame queue
    and close() at most `timeout` seconds for the queued frames, then raise SinkError. An error in the worker (an
    unwritable file, a missing codec) is raised by the next write() or by close(). Frames are copied when queued.
    """

    _STOP = object()

    def __init__(self, sink: Sink, timeout: float | None = 30.0, maxsize: int = 2):
        self.sink = sink
        self.timeout = float(timeout) if timeout else None
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self.error: BaseException | None = None
        self.closed = False
        self._busy_since: float | None = None
        self.thread = threading.Thread(target=self._work, name="sink-writer", daemon=True)
        self.thread.start()

    @property
    def count(self) -> int:  # frames the wrapped sink has written
        return self.sink.count

    def _work(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is self._STOP:
                return
            self._busy_since = time.monotonic()
            try:
                self.sink.write(frame)
            except BaseException as e:  # handed to the streaming thread by the next write()/close()
                self.error = e
                return
            finally:
                self._busy_since = None

    def _raise_error(self) -> None:
        if self.error is not None:
            err = self.error
            if isinstance(err, SinkError):
                raise err
            raise SinkError(f"{self._name()}: writing failed: {type(err).__name__}: {err}") from err

    def _name(self) -> str:
        return str(getattr(self.sink, "path", None) or getattr(self.sink, "folder", None) or type(self.sink).__name__)

    def _put(self, item, what: str) -> None:
        start = time.monotonic()
        while True:
            self._raise_error()
            if not self.thread.is_alive():
                raise SinkError(f"{self._name()}: the writer thread has stopped")
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.timeout is not None and time.monotonic() - start > self.timeout:
                    raise SinkError(f"{self._name()}: the output has accepted no frame for {self.timeout:.0f} s "
                                    f"while {what} (a blocked pipe, a hung network drive?)") from None

    def write(self, frame: np.ndarray) -> bool:
        if self.closed:
            raise SinkError(f"{self._name()}: write after close")
        self._put(np.array(frame, copy=True), "writing")
        return True

    def close(self) -> None:
        """Writes what is queued, then closes the wrapped sink (finalizing a video) in the calling thread."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.error is None and self.thread.is_alive():
                self._put(self._STOP, "finishing")
            self.thread.join(self.timeout)
            if self.thread.is_alive():
                raise SinkError(f"{self._name()}: the output did not finish writing within {self.timeout:.0f} s "
                                "(a blocked pipe, a hung network drive?)")
        except SinkError:
            log.warning("%s: not finalized: the writer thread is stuck", self._name())
            raise
        self.sink.close()
        self._raise_error()


def _write_image(path: Path, frame: np.ndarray) -> None:
    ok, buf = cv2.imencode(path.suffix, frame)
    if not ok:
        raise SinkError(f"{path}: OpenCV cannot encode '{path.suffix}' images")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def open_sink(uri: str | None, fps: float = 30.0, headless: bool = False) -> Sink:
    """None → a window (or nothing with headless); display://N; video file; image file; anything else a folder."""
    if uri is None or str(uri).strip() == "":
        return NullSink() if headless else DisplaySink()
    text = str(uri).strip()
    if text.lower().startswith("display://"):
        if headless:
            raise SinkError("--headless and a display:// sink contradict each other")
        return DisplaySink(f"derain-edge {text[len('display://'):] or '0'}")
    path = Path(text[len("file://"):] if text.lower().startswith("file://") else text)
    suffix = path.suffix.lower()
    if suffix in FOURCC:
        return VideoSink(path, fps)
    if suffix in IMAGE_SUFFIXES:
        return ImageFileSink(path)
    if suffix and not path.is_dir():
        raise SinkError(f"{text}: unknown output type '{suffix}' (videos: {', '.join(FOURCC)}; "
                        f"images: {', '.join(IMAGE_SUFFIXES)}; or a folder)")
    return ImageFolderSink(path)
