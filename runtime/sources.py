"""Frame sources behind one URI scheme (after NVIDIA jetson-inference's videoSource):

    0, 1 … | /dev/video0 | v4l2:///dev/video0 | v4l2://0   USB/V4L2 camera
    csi://0                                                 Jetson CSI camera (GStreamer nvarguscamerasrc)
    rtsp://user:pw@host/stream                              RTSP (TCP by default; rtsp+udp://… for UDP)
    http(s)://…                                             network stream OpenCV's FFMPEG can open
    clip.mp4 | file://clip.mp4                              video file (every frame)
    photo.png | frames/ | "shots/*.jpg"                      image file, folder, glob (every image, natural order)
    demo                                                    bundled synthetic rain over a panned scene (runtime.demo)

A Source only opens and reads; ``runtime.reader.FrameReader`` runs it on a thread (latest frame only for live
sources, every frame for files) and reconnects live ones.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from derain_edge.imageio import IMAGE_SUFFIXES, ImageError, natural_key, to_rgb_uint8

from .errors import SourceError
from .source_base import Source  # noqa: F401 - the base class every source here (and runtime.demo) derives from

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
# a network stream that stops answering must not block open() or read() forever: OpenCV's FFMPEG backend gives up
# after these (the reader then reconnects; its stall watchdog covers backends that ignore them)
NET_TIMEOUT_MS = 10_000
NET_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NET_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, NET_TIMEOUT_MS]
GST_HINT = ("this OpenCV build has no GStreamer (pip's opencv-python wheels never do). On a Jetson use the "
            "JetPack OpenCV: `sudo apt install python3-opencv` and run without pip's opencv in the venv "
            "(create it with --system-site-packages), or build OpenCV with -DWITH_GSTREAMER=ON")


def has_gstreamer() -> bool:
    """True when this cv2 was built with GStreamer (cv2.getBuildInformation's Video I/O section says so)."""
    m = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(m) and m.group(1).upper() not in ("NO", "OFF")


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """The nvarguscamerasrc → BGR appsink pipeline for a Jetson CSI camera (latest buffer only, never blocking)."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, height={height}, "
            f"framerate={fps}/1, format=NV12 ! nvvidconv flip-method={flip} ! video/x-raw, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false")


@dataclass(frozen=True)
class SourceSpec:
    kind: str          # "camera" | "csi" | "rtsp" | "stream" | "video" | "images" | "demo"
    target: object     # camera index/device, pipeline, URL, path, list of image paths
    live: bool         # live sources: keep only the latest frame, reconnect on loss
    uri: str


def parse_source(uri: str | int) -> SourceSpec:
    """Resolves a source URI; SourceError naming the problem for anything it cannot be."""
    text = str(uri).strip()
    if not text:
        raise SourceError("empty source; give a camera index, /dev/videoN, csi://N, rtsp://…, a video, images or 'demo'")
    low = text.lower()
    if low == "demo" or low.startswith("demo://"):
        return SourceSpec("demo", text, False, text)
    if re.fullmatch(r"\d+", text):
        return SourceSpec("camera", int(text), True, text)
    if low.startswith("v4l2://"):
        rest = text[len("v4l2://"):]
        target = int(rest) if re.fullmatch(r"\d+", rest) else rest
        return SourceSpec("camera", target, True, text)
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("camera", text, True, text)
    if low.startswith("csi://"):
        rest = text[len("csi://"):]
        if not re.fullmatch(r"\d+", rest):
            raise SourceError(f"{text}: expected csi://N with N the sensor id (csi://0)")
        return SourceSpec("csi", csi_pipeline(int(rest)), True, text)
    if low.startswith(("rtsp://", "rtsps://", "rtsp+udp://", "rtsp+tcp://")):
        return SourceSpec("rtsp", text, True, text)
    if low.startswith(("http://", "https://", "rtmp://", "udp://", "srt://")):
        return SourceSpec("stream", text, True, text)
    if low.startswith("file://"):
        text = text[len("file://"):]
    if any(c in text for c in "*?["):
        files = sorted((Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()),
                       key=natural_key)
        if not files:
            raise SourceError(f"{text}: the pattern matches no images ({', '.join(IMAGE_SUFFIXES)})")
        return SourceSpec("images", files, False, text)
    path = Path(text)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not files:
            raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return SourceSpec("images", files, False, text)
    if not path.exists():
        raise SourceError(f"{text}: no such file, folder or camera (sources: 0, /dev/videoN, v4l2://, csi://N, "
                          "rtsp://…, video, image, folder, glob, demo)")
    if path.stat().st_size == 0:
        raise SourceError(f"{text}: file is empty")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return SourceSpec("images", [path], False, text)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return SourceSpec("video", str(path), False, text)
    raise SourceError(f"{text}: unknown file type '{path.suffix}' (videos: {', '.join(VIDEO_SUFFIXES)}; "
                      f"images: {', '.join(IMAGE_SUFFIXES)})")


def check_frame(frame, name: str) -> np.ndarray:
    """A usable BGR uint8 frame or ImageError (corrupt/partial decodes come back empty, odd-shaped or typed)."""
    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        raise ImageError(f"{name}: empty frame")
    if frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8:
        return frame
    return np.ascontiguousarray(to_rgb_uint8(frame, name, bgr=True)[:, :, ::-1])


class CaptureSource(Source):
    """cv2.VideoCapture on a camera, CSI GStreamer pipeline, RTSP/HTTP stream or video file."""

    def __init__(self, spec: SourceSpec, live: bool | None = None, width: int | None = None,
                 height: int | None = None):
        self.spec = spec
        self.live = spec.live if live is None else live
        self.width, self.height = width, height
        self.cap: cv2.VideoCapture | None = None
        self.index = 0

    def open(self) -> None:
        spec = self.spec
        if spec.kind == "csi" and not has_gstreamer():
            raise SourceError(f"{spec.uri}: {GST_HINT}")
        if spec.kind == "csi":
            cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
        elif spec.kind == "rtsp":
            url = spec.target
            transport = "udp" if url.lower().startswith("rtsp+udp://") else "tcp"
            url = re.sub(r"^rtsp\+(udp|tcp)://", "rtsp://", url, flags=re.I)
            # FFMPEG reads its options from this variable when the capture opens (UDP loses packets on Wi-Fi)
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{transport}|stimeout;5000000"
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, NET_TIMEOUTS)
        elif spec.kind == "stream":
            cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, NET_TIMEOUTS)
        elif spec.kind == "video":
            cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG)
        else:  # camera
            cap = cv2.VideoCapture(spec.target, cv2.CAP_V4L2) if os.name == "posix" else cv2.VideoCapture(spec.target)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                if self.width:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                if self.height:
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if not cap.isOpened():
            cap.release()
            what = {"camera": "camera not found or busy", "video": "not a readable video (corrupt or unsupported codec)",
                    "rtsp": "stream did not open (address, credentials, network?)"}.get(spec.kind, "could not be opened")
            raise SourceError(f"{spec.uri}: {what}")
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.count = n if spec.kind == "video" and n > 0 else None

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        if not ok:
            return None
        self.index += 1
        return check_frame(frame, f"{self.spec.uri} frame {self.index}")

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageListSource(Source):
    """Image files in order; an unreadable file raises ImageError from read() (counted and skipped by the reader)."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.files: list[Path] = list(spec.target)
        self.count = len(self.files)
        self.pos = 0

    def read(self) -> np.ndarray | None:
        if self.pos >= len(self.files):
            return None
        path = self.files[self.pos]
        self.pos += 1
        data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if img is None:
            raise ImageError(f"{path}: not a readable image (corrupt, truncated or missing)")
        return check_frame(img, str(path))


def open_source(uri: str | int | SourceSpec, **kwargs) -> Source:
    """A Source for `uri` (not opened yet: the reader opens it, and reopens live ones after a drop)."""
    spec = uri if isinstance(uri, SourceSpec) else parse_source(uri)
    if spec.kind == "demo":
        from .demo import DemoSource

        return DemoSource(**kwargs)
    if spec.kind == "images":
        return ImageListSource(spec)
    return CaptureSource(spec, **kwargs)
