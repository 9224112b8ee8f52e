"""The runtime's exceptions: each carries a one-line reason that the CLIs print as ``error: …`` (exit code 2)."""
from __future__ import annotations

from derain_edge.imageio import ImageError


class RuntimeErrorBase(ValueError):
    """Base of the runtime's user-facing errors (bad model path, unusable backend, bad source or sink)."""


class BackendError(RuntimeErrorBase):
    """A model/artifact that cannot be loaded by the requested backend, with the reason and what to install."""


class SourceError(RuntimeErrorBase):
    """A source URI that cannot be opened (missing file, no camera, no GStreamer in this OpenCV build…)."""


class SinkError(RuntimeErrorBase):
    """A sink that cannot be written (no GUI in this OpenCV build, unsupported codec, unwritable folder…)."""


__all__ = ["BackendError", "ImageError", "RuntimeErrorBase", "SinkError", "SourceError"]
