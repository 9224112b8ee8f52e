"""The runtime's exceptions: each carries a one-line reason that the CLIs print as ``error: …`` (exit code 2)."""
from __future__ import annotations

from derain_edge.engines.errors import BackendError, RuntimeErrorBase
from derain_edge.imageio import ImageError


class SourceError(RuntimeErrorBase):
    """A source URI that cannot be opened (missing file, no camera, no GStreamer in this OpenCV build…)."""


class SinkError(RuntimeErrorBase):
    """A sink that cannot be written (no GUI in this OpenCV build, unsupported codec, unwritable folder…)."""


__all__ = ["BackendError", "ImageError", "RuntimeErrorBase", "SinkError", "SourceError"]
