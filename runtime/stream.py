"""The streaming loop behind derain-run: reader thread → Derainer → view + counters → sink, with clean shutdown.

Latency is capture-to-output (the time a frame waited in the reader included); FPS is an exponential moving average
of the loop rate. The sink is closed (video finalized) and the reader stopped whatever ends the loop — the end of
the source, q/Esc in the window, an exception, or Ctrl-C (KeyboardInterrupt propagates after the clean-up).

Every wait is bounded: file sinks are written on their own thread (``sinks.ThreadedSink``), so a sink that blocks
fails the run with SinkError after `stall_timeout` seconds; the reader raises SourceError for a source that stalls
as long or a reader thread that died; the clean-up waits at most a few seconds for each.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from derain_edge.imageio import ImageError

from .errors import RuntimeErrorBase
from .reader import FrameReader
from .sinks import Sink, ThreadedSink

VIEWS = ("side-by-side", "derained", "split")


@dataclass
class StreamStats:
    frames: int = 0              # frames derained and written
    corrupt: int = 0             # frames the reader or the Derainer rejected
    dropped: int = 0             # stale live frames replaced by newer ones
    reconnects: int = 0
    seconds: float = 0.0
    infer_ms: deque = field(default_factory=lambda: deque(maxlen=1000), repr=False)    # last Derainer calls
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=1000), repr=False)  # capture-to-output
    ended: str = ""
    error: str = ""              # the one-line reason when a source or sink failure ended the run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        d = {k: getattr(self, k) for k in ("frames", "corrupt", "dropped", "reconnects", "seconds", "ended")}
        if self.error:
            d["error"] = self.error
        d["fps"] = round(self.fps, 2)
        for key in ("infer_ms", "latency_ms"):
            vals = getattr(self, key)
            d[key + "_p50"] = round(float(np.median(vals)), 2) if vals else None
        return d


def compose(rainy: np.ndarray, derained: np.ndarray, view: str) -> np.ndarray:
    """The picture shown/written: derained only, rainy | derained side by side, or a split at the middle."""
    if view == "derained":
        return derained
    if view == "side-by-side":
        out = np.concatenate([rainy, derained], axis=1)
        _label(out, "rainy", 0)
        _label(out, "derained", rainy.shape[1])
        return out
    if view == "split":
        out = derained.copy()
        half = rainy.shape[1] // 2
        out[:, :half] = rainy[:, :half]
        cv2.line(out, (half, 0), (half, out.shape[0] - 1), (255, 255, 255), 1)
        return out
    raise ValueError(f"unknown view '{view}'; choose from: {', '.join(VIEWS)}")


def _label(img: np.ndarray, text: str, x: int) -> None:
    scale = max(0.35, img.shape[0] / 700.0)
    y = img.shape[0] - 8
    cv2.putText(img, text, (x + 6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (x + 6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_counters(img: np.ndarray, fps: float, latency_ms: float, dropped: int, corrupt: int, backend: str) -> None:
    """FPS, latency and dropped/corrupt counters in the top-left corner, on a dark band for contrast."""
    text = f"{fps:5.1f} fps  {latency_ms:6.1f} ms  dropped {dropped}  corrupt {corrupt}  {backend}"
    scale = max(0.35, img.shape[0] / 900.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, 0), (min(img.shape[1] - 1, tw + 8), th + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def run_stream(derainer, reader: FrameReader, sink: Sink, view: str = "side-by-side", overlay: bool = True,
               progress=None, on_frame=None, stats: StreamStats | None = None,
               stall_timeout: float | None = 30.0) -> StreamStats:
    """Runs until the source ends, the sink asks to stop, or Ctrl-C; always stops the reader and closes the sink.

    progress: an object with update(n) (a tqdm bar) or None. on_frame(stats): called after every written frame.
    stats: a StreamStats to fill in (so a caller still has the counters when an exception ends the run).
    stall_timeout: seconds a sink may block before the run fails with SinkError (None: wait as long as it takes).
    Source and sink failures (SourceError, SinkError) propagate after the clean-up, with stats.ended/.error set.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view '{view}'; choose from: {', '.join(VIEWS)}")
    stats = stats if stats is not None else StreamStats()
    fps_ema = 0.0
    start = last = time.perf_counter()
    out_sink = ThreadedSink(sink, timeout=stall_timeout) if getattr(sink, "threadable", False) else sink
    failed = False
    try:
        reader.start()
        for frame in reader:
            t0 = time.perf_counter()
            try:
                out = derainer(frame.image)
            except ImageError:
                stats.corrupt += 1
                continue
            t1 = time.perf_counter()
            stats.infer_ms.append(1000 * (t1 - t0))
            latency = 1000 * (t1 - frame.time)
            stats.latency_ms.append(latency)
            inst = 1.0 / max(t1 - last, 1e-6)
            fps_ema = inst if stats.frames == 0 else 0.9 * fps_ema + 0.1 * inst
            last = t1
            picture = compose(frame.image, out, view)
            if overlay:
                if picture is out:
                    picture = out.copy()
                draw_counters(picture, fps_ema, latency, reader.stats.dropped,
                              reader.stats.corrupt + stats.corrupt, derainer.backend)
            keep_going = out_sink.write(picture)
            stats.frames += 1
            if progress is not None:
                progress.update(1)
            if on_frame is not None:
                on_frame(stats)
            if not keep_going:
                stats.ended = "stopped by the viewer"
                break
        else:
            stats.ended = reader.ended_reason or "end"
    except KeyboardInterrupt:
        failed = True
        stats.ended = "interrupted"
        raise
    except RuntimeErrorBase as e:  # SourceError (reader failed, stalled), SinkError (blocked, unwritable)
        failed = True
        stats.ended = f"error: {e}"
        stats.error = str(e)
        raise
    except BaseException:
        failed = True
        raise
    finally:
        reader.stop()
        try:
            out_sink.close()
        except RuntimeErrorBase as e:
            stats.error = stats.error or str(e)
            if not failed:  # otherwise the exception already on its way wins
                stats.ended = f"error: {e}"
                raise
        finally:
            stats.seconds = time.perf_counter() - start
            stats.dropped = reader.stats.dropped
            stats.corrupt += reader.stats.corrupt
            stats.reconnects = reader.stats.reconnects
    return stats
