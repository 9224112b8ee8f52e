"""Derain before a detector: the three lines a driving or surveillance pipeline adds (see ``pipeline()`` below).

The detector here is OpenCV's ArUco fiducial-marker detector (the pip wheel of OpenCV 5 has no HOG people detector
and no cascades; markers need no model download). The scene is a rainy street-like frame with markers on it,
rendered by derain-edge's synthesizer; the script counts markers found in the rainy frame and in the derained one.
The detector's own input handling is untouched: it gets the same BGR uint8 frame it would have got from the camera.

    python examples/detector_pipeline.py                       # 5 synthetic frames, shipped LPNet weights
    python examples/detector_pipeline.py --model exports/lpnet_fp32.onnx --source rtsp://cam/stream
    python examples/detector_pipeline.py --smoke               # seconds: one small synthetic frame, one thread
"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from derain_edge.rain import RainConfig, render_rain
from derain_edge.scenes import dead_leaves
from derain_edge.sizes import parse_size
from runtime import Derainer


def make_detector():
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    return cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters()), dictionary


def detect(detector, frame_bgr: np.ndarray) -> list[int]:
    """The downstream detector, exactly as it would run on the camera frame."""
    _corners, ids, _rejected = detector.detectMarkers(frame_bgr)
    return [] if ids is None else sorted(int(i) for i in ids.ravel())


def pipeline(frames, derain: Derainer, detector):
    """The integration itself: derain each frame, hand the result to the detector unchanged."""
    for frame in frames:
        clean = derain(frame)            # BGR uint8 in, BGR uint8 out, same size
        yield frame, clean, detect(detector, clean)


def synthetic_frames(n: int, size: tuple[int, int], dictionary, seed: int = 0):
    """Rainy BGR frames of a scene with four markers (ids 0–3) on it."""
    h, w = size
    rng = np.random.default_rng(seed)
    scene = dead_leaves(h, w, rng)
    side = max(24, min(h, w) // 4)
    for k, (y, x) in enumerate([(0.1, 0.1), (0.1, 0.6), (0.55, 0.1), (0.55, 0.6)]):
        marker = cv2.aruco.generateImageMarker(dictionary, k, side)
        pad = side // 5  # the white quiet zone markers are printed with
        tile = np.full((side + 2 * pad, side + 2 * pad), 255, np.uint8)
        tile[pad:pad + side, pad:pad + side] = marker
        y0, x0 = int(y * h), int(x * w)
        th, tw = tile.shape
        scene[y0:y0 + th, x0:x0 + tw] = tile[: h - y0, : w - x0, None]
    cfg = RainConfig.heavy(scale=max(0.5, h / 320.0), veil_prob=0.0, drop_prob=0.0)
    for i in range(n):
        rainy = render_rain(scene.astype(np.float32) / 255.0, np.random.default_rng((seed, i)), cfg)
        yield np.ascontiguousarray(np.round(rainy * 255).astype(np.uint8)[:, :, ::-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="weights or exported artifact (default: shipped LPNet)")
    p.add_argument("--source", default=None, help="a derain-run source URI instead of the synthetic frames")
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--size", default="320x240", help="WxH of the synthetic frames (width first, as cameras say)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--smoke", action="store_true", help="check the example in seconds: 1 frame of 128x96, 1 thread")
    args = p.parse_args(argv)
    if args.smoke:
        args.frames, args.size, args.threads = 1, "128x96", args.threads or 1
    try:
        h, w = parse_size(args.size)
    except ValueError as e:
        p.error(str(e))
    derain = Derainer(args.model, threads=args.threads)
    detector, dictionary = make_detector()
    if args.source:
        from runtime.reader import FrameReader
        from runtime.sources import open_source

        reader = FrameReader(open_source(args.source), max_frames=args.frames)
        frames = (f.image for f in reader)
    else:
        frames = synthetic_frames(args.frames, (h, w), dictionary)
    totals = [0, 0]
    for i, (rainy, clean, found) in enumerate(pipeline(frames, derain, detector)):
        before = detect(detector, rainy)  # only for the comparison printed here
        totals[0] += len(before)
        totals[1] += len(found)
        print(f"frame {i}: markers rainy={len(before)} {before} derained={len(found)} {found}")
    print(f"total markers found: rainy {totals[0]}, derained {totals[1]} ({derain.backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
