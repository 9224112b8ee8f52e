"""What one target function hands back to the exporter: the artifact, its I/O contract, and a way to run it here.

Every per-target function (``export.onnx_export``, ``export.jetson``, ``export.tflite``, ``export.coreml``) returns a
list of ``Exported``; the exporter then measures parity and accuracy cost through ``runner`` and writes the sidecar
(``export.sidecar``). Target functions never write sidecars themselves.

``runner`` is not the target's own code: it opens the artifact in the engine the runtime uses for its format
(``derain_edge.engines.backends``: onnxruntime, LiteRT, CoreML), fed the contract the sidecar will hold, with the
runtime's fixed-size policy (``derain_edge.engines.tiling.run_fitted``: pad, or tile), so a sidecar's numbers are
what ``Derainer(artifact, gate=False)`` gives.
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
    skip_reason: str | None = None          # why it cannot run here (e.g. "CoreML prediction needs macOS")
    extra: dict = field(default_factory=dict)  # more sidecar keys (e.g. compute units, quantization details)
    _runner: Runner | None = field(default=None, repr=False, compare=False)

    def contract(self) -> dict:
        """The sidecar fields an engine needs to feed the artifact."""
        return {"precision": self.precision, "inputs": self.inputs, "outputs": self.outputs, "sizes": self.sizes}

    @property
    def runner(self) -> Runner | None:
        """NCHW float32 [0, 1] at any H×W → same, through the runtime's engine for this format (opened on first use);
        None when the artifact cannot run on this machine (`skip_reason`)."""
        if self.skip_reason is not None:
            return None
        if self._runner is None:
            self._runner = artifact_runner(self.path, self.format, self.contract())
        return self._runner


ENGINE_OF_FORMAT = {"onnx": "OrtBackend", "tflite": "TfliteBackend", "mlpackage": "CoreMLBackend"}


def open_engine(path, fmt: str, contract: dict):
    """The runtime's engine (``derain_edge.engines.backends``) for an artifact of format `fmt`."""
    from derain_edge.engines import backends

    if fmt not in ENGINE_OF_FORMAT:
        raise ValueError(f"no engine runs {fmt} artifacts here")
    return getattr(backends, ENGINE_OF_FORMAT[fmt])(path, contract)


def artifact_runner(path, fmt: str, contract: dict) -> Runner:
    """A Runner over the artifact: its runtime engine behind the runtime's pad/tile policy (``run_fitted``)."""
    from derain_edge.engines.tiling import run_fitted

    engine = open_engine(path, fmt, contract)
    return lambda x: run_fitted(engine, np.ascontiguousarray(x, dtype=np.float32))


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
