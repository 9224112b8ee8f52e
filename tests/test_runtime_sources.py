"""Sources, the reader thread and sinks: URI parsing, latest-frame dropping, reconnect with back-off, a stream that
dies mid-way, corrupt frames skipped and counted, flat memory over thousands of frames, atomic video output."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_clean
from runtime import Derainer, SinkError, SourceError
from runtime.reader import FrameReader
from runtime.sinks import ImageFolderSink, NullSink, VideoSink, open_sink
from runtime.sources import CaptureSource, has_gstreamer, open_source, parse_source
from runtime.stream import run_stream

N_FRAMES = 30


def write_video(path: Path, n: int, size=(32, 48), fourcc="MJPG") -> Path:
    h, w = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (w, h))
    assert vw.isOpened()
    base = make_clean(w, h, 0)[:, :, ::-1]
    for i in range(n):
        frame = np.roll(base, i, axis=1).copy()
        cv2.putText(frame, str(i % 10), (2, h - 4), cv2.FONT_HERSHEY_PLAIN, 1.0, (255, 255, 255), 1)
        vw.write(frame)
    vw.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", N_FRAMES)


# ------------------------------------------------------------------------------------------------ URIs
@pytest.mark.parametrize("uri, kind, live", [
    ("0", "camera", True), ("/dev/video3", "camera", True), ("v4l2:///dev/video1", "camera", True),
    ("v4l2://2", "camera", True), ("csi://0", "csi", True), ("rtsp://cam.local:554/stream", "rtsp", True),
    ("rtsp+udp://cam/s", "rtsp", True), ("http://cam/mjpg", "stream", True), ("demo", "demo", False),
])
def test_parse_source_schemes(uri, kind, live):
    spec = parse_source(uri)
    assert (spec.kind, spec.live) == (kind, live)
    if kind == "csi":
        assert "nvarguscamerasrc sensor-id=0" in spec.target and "appsink drop=true max-buffers=1 sync=false" in spec.target


def test_parse_files_folders_globs(tmp_path, video):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), make_clean(8, 6, i))
    assert parse_source(str(video)).kind == "video"
    assert parse_source("file://" + str(video)).kind == "video"
    assert [p.name for p in parse_source(str(tmp_path)).target] == ["1.png", "2.png", "10.png"]
    assert [p.name for p in parse_source(str(tmp_path / "*.png")).target] == ["1.png", "2.png", "10.png"]
    assert parse_source(str(tmp_path / "1.png")).kind == "images"
    for bad, match in [(tmp_path / "nope.mp4", "no such file"), (tmp_path / "*.jpg", "matches no images"), ("", "empty")]:
        with pytest.raises(SourceError, match=match):
            parse_source(str(bad))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        parse_source(str(tmp_path / "empty.mp4"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="unknown file type"):
        parse_source(str(tmp_path / "notes.txt"))


def test_csi_without_gstreamer_says_what_to_install():
    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer; the refusal path is not reachable")
    with pytest.raises(SourceError, match="GStreamer.*python3-opencv"):
        open_source("csi://0").open()


def test_missing_camera_and_unreachable_rtsp_fail_clearly():
    with pytest.raises(SourceError, match="camera not found"):
        open_source("/dev/video97").open()
    src = open_source("rtsp://127.0.0.1:9/stream")  # discard port: connection refused at once
    with pytest.raises(SourceError, match="stream did not open"):
        src.open()
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"].startswith("rtsp_transport;tcp")


# ------------------------------------------------------------------------------------------------ reader
def test_file_reader_delivers_every_frame(video):
    reader = FrameReader(open_source(str(video)))
    assert reader.latest_only is False
    frames = []
    for f in reader:
        time.sleep(0.002)  # a slow consumer must not lose frames of a file
        frames.append(f)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert reader.stats.read == N_FRAMES and reader.stats.dropped == 0 and reader.ended_reason == "end"
    assert frames[0].image.shape == (32, 48, 3) and frames[0].image.dtype == np.uint8


def test_live_reader_keeps_only_the_latest_frame(video):
    src = CaptureSource(parse_source(str(video)), live=True)
    reader = FrameReader(src, reconnect=False)
    assert reader.latest_only
    got = []
    for f in reader:
        got.append(f.index)
        time.sleep(0.03)  # slower than the source: stale frames are replaced, not queued
    assert reader.stats.dropped > 0
    assert reader.stats.delivered + reader.stats.dropped == reader.stats.read == N_FRAMES
    assert got == sorted(got) and got[-1] == N_FRAMES - 1  # always newer frames, and the last one arrives


def test_live_stream_that_drops_is_reconnected(video):
    src = CaptureSource(parse_source(str(video)), live=True)  # end of file = the stream dropped
    reader = FrameReader(src, backoff=(0.01, 0.05), max_frames=2 * N_FRAMES + 10)
    n = sum(1 for _ in reader)
    assert reader.stats.reconnects >= 2
    assert reader.stats.read == 2 * N_FRAMES + 10 and n >= 1
    assert reader.ended_reason == "max_frames"


def test_live_stream_that_dies_ends_cleanly(tmp_path, video):
    path = shutil.copy(video, tmp_path / "live.avi")
    src = CaptureSource(parse_source(str(path)), live=True)
    reader = FrameReader(src, max_retries=3, backoff=(0.01, 0.02))
    first = reader.get(timeout=10)
    assert first is not None
    os.unlink(path)  # the camera goes away: reopening fails from now on
    t0 = time.perf_counter()
    rest = list(reader)
    assert time.perf_counter() - t0 < 10
    assert reader.ended_reason.startswith("lost") and reader.stats.reconnects == 0
    assert "reconnect 3/3" in reader.stats.errors[-1]
    assert 1 + len(rest) + reader.stats.dropped == N_FRAMES


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), make_clean(16, 12, i))
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (tmp_path / "0.png").read_bytes()
    (tmp_path / "4.png").write_bytes(good[: len(good) // 3])  # truncated
    reader = FrameReader(open_source(str(tmp_path)))
    frames = list(reader)
    assert len(frames) == 3 and reader.stats.corrupt == 2
    assert any("3.png" in e for e in reader.stats.errors)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS is read from /proc (Linux)")
def test_memory_stays_flat_over_thousands_of_frames(tmp_path):
    path = write_video(tmp_path / "long.avi", 2500, size=(16, 24))
    derainer = Derainer(threads=1)
    samples = {}

    def sample(stats):
        if stats.frames in (500, 2500):
            samples[stats.frames] = _rss_mb()

    stats = run_stream(derainer, FrameReader(open_source(str(path))), NullSink(), on_frame=sample)
    assert stats.frames == 2500 and stats.corrupt == 0
    assert samples[2500] - samples[500] < 8.0, samples  # MB: no per-frame growth (2000 frames would show it)


# ------------------------------------------------------------------------------------------------ sinks
def test_video_sink_is_atomic_and_complete(tmp_path):
    out = tmp_path / "out.mp4"
    sink = VideoSink(out, fps=25)
    for i in range(7):
        sink.write(np.full((32, 48, 3), 20 * i, np.uint8))
    assert not out.exists()  # still being written under a temporary name
    sink.close()
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (48, 32)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    with pytest.raises(SinkError, match="size changed"):
        s = VideoSink(tmp_path / "b.avi")
        s.write(np.zeros((8, 8, 3), np.uint8))
        s.write(np.zeros((8, 10, 3), np.uint8))


def test_open_sink_kinds(tmp_path):
    assert isinstance(open_sink(str(tmp_path / "frames"), headless=True), ImageFolderSink)
    assert isinstance(open_sink(None, headless=True), NullSink)
    with pytest.raises(SinkError, match="unknown output type"):
        open_sink(str(tmp_path / "out.xyz"))
    with pytest.raises(SinkError, match="contradict"):
        open_sink("display://0", headless=True)
    sink = open_sink(str(tmp_path / "frames"))
    sink.write(np.zeros((4, 5, 3), np.uint8))
    sink.write(np.ones((4, 5, 3), np.uint8))
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000000.png", "frame_000001.png"]


def test_display_without_gui_is_a_clear_error():
    try:
        sink = open_sink("display://0")
    except SinkError as e:
        assert "--headless" in str(e)
        return
    sink.close()
    pytest.skip("this OpenCV has a GUI and a display")
