"""Nothing in the streaming runtime waits forever (issue 11 §1).

Real FrameReader threads, real run_stream, real sinks and Derainers; only the *sources* (and one deliberately blocked
sink) are fakes, so a camera that stalls or a reader that raises can be produced on demand. Every test runs the thing
under test on a daemon thread joined with a deadline (pytest-timeout is not installed), so a regression fails the
test with "hung" instead of hanging the suite.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_clean
from runtime import Derainer, SinkError, SourceError
from runtime.reader import FrameReader
from runtime.sinks import NullSink, Sink, VideoSink
from runtime.sources import CaptureSource, Source, parse_source
from runtime.stream import StreamStats, run_stream

ROOT = Path(__file__).resolve().parents[1]


def bounded(fn, seconds: float):
    """fn() on a daemon thread; its result (or exception) if it finishes within `seconds`, else the test fails."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"hung: still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"], time.monotonic() - start


class Frames(Source):
    """A file-like fake source: `n` small frames as fast as asked, then an optional fault."""

    def __init__(self, n: int, raise_after: BaseException | None = None, stall: threading.Event | None = None,
                 live: bool = False):
        self.n, self.raise_after, self.stall, self.live = n, raise_after, stall, live
        self.pos = 0
        self.img = make_clean(48, 32, 1)[:, :, ::-1].copy()

    def read(self):
        if self.pos >= self.n:
            if self.raise_after is not None:
                raise self.raise_after
            if self.stall is not None:
                self.stall.wait()  # a hung camera / network drive: read() never returns
            return None
        self.pos += 1
        return self.img


@pytest.fixture(scope="module")
def derainer():
    return Derainer(backend="pytorch", threads=1)


# ------------------------------------------------------------------------------------------------ the reader
def test_slow_consumer_still_gets_the_end():
    """The issue's repro: 6 frames, a consumer that takes 1.5 s per frame (the old reader dropped the end marker
    after 1 s and the consumer waited forever)."""
    reader = FrameReader(Frames(6))

    def consume():
        got = []
        for frame in reader:
            time.sleep(1.5)
            got.append(frame.index)
        return got

    got, took = bounded(consume, 20)
    assert got == list(range(6)) and reader.ended_reason == "end"
    assert took < 6 * 1.5 + 3


def test_end_is_seen_by_every_later_get():
    reader = FrameReader(Frames(2))
    (frames, _) = bounded(lambda: [reader.get(), reader.get(), reader.get(), reader.get()], 10)
    assert [f is None for f in frames] == [False, False, True, True]
    reader.stop()


@pytest.mark.parametrize("live", [False, True])
def test_reader_that_raises_hands_the_exception_to_the_consumer(live):
    reader = FrameReader(Frames(3, raise_after=RuntimeError("sensor on fire"), live=live), reconnect=False)

    def consume():
        got = []
        with pytest.raises(SourceError, match="frame reader failed: RuntimeError: sensor on fire") as e:
            for frame in reader:
                got.append(frame.index)
                time.sleep(0.05)
        assert isinstance(e.value.__cause__, RuntimeError)
        return got

    got, took = bounded(consume, 10)
    assert took < 5
    if not live:
        assert got == [0, 1, 2]  # every frame read before the failure arrives first
    with pytest.raises(SourceError):  # and the failure stays: a later get() does not pretend the stream ended well
        reader.get()
    reader.stop()


@pytest.mark.parametrize("live", [False, True])
def test_source_that_stalls_fails_with_a_clear_message(live):
    release = threading.Event()
    reader = FrameReader(Frames(1, stall=release, live=live), reconnect=False, stall_timeout=1.0)
    try:
        def consume():
            got = []
            with pytest.raises(SourceError, match=r"no frame for \d+ s — the source stalled inside read\(\)"):
                for frame in reader:
                    got.append(frame.index)
            return got

        got, took = bounded(consume, 10)
        assert got == [0] and 1.0 <= took < 4
        assert reader.ended_reason.startswith("stalled")
        _, took = bounded(lambda: reader.stop(timeout=0.5), 5)  # a thread stuck in read() does not block stop()
        assert took < 2
    finally:
        release.set()


def test_camera_that_disappears_mid_run_ends_the_stream(tmp_path, derainer):
    """A live capture whose device vanishes: read() fails, every reopen fails, the run ends "lost" with the video
    finalized — within a bound."""
    clip = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (48, 32))
    for i in range(40):
        vw.write(np.ascontiguousarray(np.roll(make_clean(48, 32, 3)[:, :, ::-1], i, axis=1)))
    vw.release()
    camera = tmp_path / "camera.avi"
    shutil.copy(clip, camera)
    source = CaptureSource(parse_source(str(camera)), live=True)
    reader = FrameReader(source, max_retries=3, backoff=(0.05, 0.1))
    out = tmp_path / "out.mp4"

    def unplug(stats):
        if stats.frames == 2 and camera.exists():
            camera.unlink()  # reopening fails from now on

    stats, took = bounded(lambda: run_stream(derainer, reader, VideoSink(out, 24.0), on_frame=unplug), 30)
    assert stats.ended.startswith("lost: no frames after 3 reconnect attempts"), stats.ended
    assert stats.frames >= 2 and out.is_file() and not list(tmp_path.glob(".out.*"))
    assert "reconnect 3/3" in reader.stats.errors[-1]


# ------------------------------------------------------------------------------------------------ run_stream
def test_run_stream_raises_the_reader_failure_after_finalizing(tmp_path, derainer):
    out = tmp_path / "out.mp4"
    reader = FrameReader(Frames(3, raise_after=OSError("USB reset")))
    stats = StreamStats()
    with pytest.raises(SourceError, match="OSError: USB reset"):
        bounded(lambda: run_stream(derainer, reader, VideoSink(out, 24.0), stats=stats), 30)
    assert stats.frames == 3 and stats.ended.startswith("error:") and "USB reset" in stats.error
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3  # the video was finalized with every frame before the failure


class BlockedSink(Sink):
    """A sink whose write never returns (a full pipe, a hung network drive)."""

    def __init__(self):
        self.release = threading.Event()
        self.closed = False

    def write(self, frame):
        self.release.wait()
        return True

    def close(self):
        self.closed = True


def test_sink_that_blocks_fails_with_a_clear_message(derainer):
    sink = BlockedSink()
    reader = FrameReader(Frames(50))
    stats = StreamStats()
    try:
        with pytest.raises(SinkError, match=r"accepted no frame for 1 s"):
            _, took = bounded(lambda: run_stream(derainer, reader, sink, stats=stats, stall_timeout=1.0), 15)
        assert stats.ended.startswith("error:") and "accepted no frame" in stats.error
        assert reader._stop.is_set()  # the reader was stopped too
        assert not sink.closed  # never closed under a writer that is still inside write()
    finally:
        sink.release.set()


def test_sink_errors_reach_the_stream(tmp_path, derainer):
    """An error raised on the writer thread (here: a frame size change mid-video) ends the run with that error."""

    class Growing(Source):
        def __init__(self):
            self.i = 0

        def read(self):
            self.i += 1
            return None if self.i > 6 else make_clean(48 + 8 * (self.i > 3), 32, 1)[:, :, ::-1].copy()

    with pytest.raises(SinkError, match="frame size changed"):
        bounded(lambda: run_stream(derainer, FrameReader(Growing()), VideoSink(tmp_path / "v.mp4", 24.0)), 30)


def test_viewer_stop_and_null_sink_still_end_cleanly(derainer):
    stats, _ = bounded(lambda: run_stream(derainer, FrameReader(Frames(4)), NullSink()), 30)
    assert stats.frames == 4 and stats.ended == "end"


# ------------------------------------------------------------------------------------------------ async worker
def test_async_submit_copies_the_frame(derainer):
    a = make_clean(48, 32, 5)[:, :, ::-1].copy()
    b = make_clean(48, 32, 9)[:, :, ::-1].copy()
    buf = a.copy()
    with derainer.start_async(maxsize=2) as worker:
        fut = worker.submit(buf)
        buf[:] = b  # the caller reuses its buffer at once, as a capture loop does
        got = fut.result(timeout=30)
    assert np.array_equal(got, derainer(a))


def test_async_close_with_timeout_cancels_what_it_could_not_finish(derainer):
    class Slow:
        backend = "slow"

        def __call__(self, frame):
            time.sleep(0.5)
            return frame

    from runtime.derainer import AsyncDerainer

    worker = AsyncDerainer(Slow(), maxsize=8)
    futs = [worker.submit(np.zeros((4, 4, 3), np.uint8)) for _ in range(6)]
    _, took = bounded(lambda: worker.close(timeout=0.7), 5)
    assert took < 2
    assert futs[0].result(timeout=5) is not None
    assert any(f.cancelled() for f in futs)  # result() raises CancelledError instead of waiting forever
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(np.zeros((4, 4, 3), np.uint8))


# ------------------------------------------------------------------------------------------------ derain-run
def test_sigterm_writes_the_json_and_finalizes_the_video(tmp_path):
    out, stats = tmp_path / "long.mp4", tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "demo", str(out), "--headless", "--frames", "0",
                             "--size", "64x48", "--backend", "pytorch", "--threads", "1", "--json", str(stats)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(p.stat().st_size > 2000 for p in tmp_path.glob(".long.*")):
            time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert took < 10, took
    summary = json.loads(stats.read_text())
    assert summary["ended"] == "interrupted" and summary["frames"] >= 1 and summary["backend"] == "pytorch-fp32"
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.read()[0]
    assert not list(tmp_path.glob(".long.*"))


def test_json_destination_is_checked_before_the_run(tmp_path, capsys):
    from runtime.cli import main

    assert main(["demo", "--headless", "--frames", "2", "--json", str(tmp_path / "missing" / "r.json")]) == 2
    assert "--json" in capsys.readouterr().err
