"""What one target function hands back to the exporter: the artifact, its I/O contract, and a way to run it here.

Every per-target function (``export.onnx_export``, ``export.jetson``, ``export.tflite``, ``export.coreml``) returns a
list of ``Exported``; the exporter then measures parity and accuracy cost through ``runner`` and writes the sidecar
(``export.sidecar``). Target functions never write sidecars themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# NCHW float32 RGB in [0, 1] (N×3×H×W) in → the same layout and range out, whatever the artifact's own I/O is.
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class Exported:
    path: Path                              # the artifact: a file, or a folder for .mlpackage
    target: str                             # "onnx" | "jetson" | "coreml" | "tflite"
    format: str                             # "onnx" | "engine" | "mlpackage" | "tflite"
    precision: str                          # "fp32" | "fp16" | "int8" | "int16x8"
    inputs: list[dict]                      # sidecar I/O entries (see export.sidecar)
    outputs: list[dict]
    sizes: str | list[list[int]]            # "dynamic" or [[H, W], …]
    versions: dict[str, str] = field(default_factory=dict)
    runner: Runner | None = None            # None when the artifact cannot run on this machine
    skip_reason: str | None = None          # why runner is None (e.g. "CoreML prediction needs macOS")
    extra: dict = field(default_factory=dict)  # more sidecar keys (e.g. compute units, quantization details)


def unique_sizes(sizes, error: type[Exception]) -> list[tuple[int, int]]:
    """(H, W) pairs as ints, in order, without repeats; `error` names the first one that is not a positive pair."""
    out: list[tuple[int, int]] = []
    for s in sizes:
        try:
            h, w = (int(v) for v in s)
        except (TypeError, ValueError):
            raise error(f"size {s!r} is not a (height, width) pair") from None
        if h < 1 or w < 1:
            raise error(f"size {h}x{w}: height and width must be positive")
        if (h, w) not in out:
            out.append((h, w))
    return out
