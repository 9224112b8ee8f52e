"""Step logging for derain-export: every step is numbered, timed and printed to stderr as it starts and ends."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator


class Steps:
    """``with steps.step("export onnx fp32"): …`` prints ``[2/7] export onnx fp32 …`` then ``done in 3.1 s``."""

    def __init__(self, total: int, write: Callable[[str], None] | None = None):
        self.total = max(int(total), 1)
        self.done = 0
        self.timings: list[tuple[str, float]] = []
        self.write = write or (lambda s: print(s, file=sys.stderr, flush=True))

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.done += 1
        self.total = max(self.total, self.done)
        self.write(f"[{self.done}/{self.total}] {what} …")
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.write(f"      {what}: failed after {time.perf_counter() - start:.1f} s")
            raise
        elapsed = time.perf_counter() - start
        self.timings.append((what, elapsed))
        self.write(f"      done in {elapsed:.1f} s")

    def note(self, message: str) -> None:
        self.write(f"      {message}")
