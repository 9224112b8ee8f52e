"""The one frame-size convention of every command and doc: ``WxH``, width first, as cameras say (640x480).

Text is always width first (``--size 640x480``, file names ``lpnet_fp16_640x480.tflite``); inside Python a size is a
``(height, width)`` tuple, the order of numpy and NCHW tensors. Sidecars name both: ``{"width": 640, "height": 480}``.
"""
from __future__ import annotations

import re

_SIZE = re.compile(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*")


def parse_size(text: str, *, minimum: int = 1, maximum: int | None = None, option: str = "--size",
               error: type[Exception] = ValueError) -> tuple[int, int]:
    """``'640x480'`` (width × height) → ``(480, 640)`` (height, width); `error` names a malformed or
    out-of-range size."""
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise error(f"{option} {text!r} is not WIDTHxHEIGHT (e.g. 640x480, width first)")
    w, h = int(m.group(1)), int(m.group(2))
    if w < minimum or h < minimum or (maximum is not None and (w > maximum or h > maximum)):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise error(f"{option} {text}: width and height must be {bound}")
    return h, w


def size_text(hw) -> str:
    """``(480, 640)`` (height, width) → ``'640x480'``."""
    h, w = (int(v) for v in hw)
    return f"{w}x{h}"


def size_json(hw) -> dict:
    """``(480, 640)`` → ``{"width": 640, "height": 480}`` (how sidecars and reports store a size)."""
    h, w = (int(v) for v in hw)
    return {"width": w, "height": h}


def from_json(value) -> tuple[int, int]:
    """A stored size → ``(height, width)``: ``{"width", "height"}``, or the older ``[H, W]`` list of sidecar 1."""
    if isinstance(value, dict):
        if set(value) >= {"width", "height"}:
            return int(value["height"]), int(value["width"])
        raise ValueError(f"size {value!r} lacks 'width'/'height'")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"size {value!r} is neither {{\"width\", \"height\"}} nor [height, width]")
