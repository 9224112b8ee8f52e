"""The Source base class (open → read … → close), alone in its module: ``runtime.sources`` (cameras, streams,
files, and the ``open_source`` factory) and ``runtime.demo`` (the synthetic source the factory opens for ``demo``)
both derive from it without importing each other in a circle."""
from __future__ import annotations

import numpy as np


class Source:
    """open() → read() … → close(). read() returns a frame, or None when the source has nothing more (end of file,
    stream lost). Frames that come back unusable raise ImageError from read() so the reader can count and skip them."""

    live = False
    fps: float = 0.0
    count: int | None = None  # frames in the source when known (files, image lists)

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass
