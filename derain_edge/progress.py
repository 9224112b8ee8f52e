"""Progress for every long command, in a terminal and in a log file alike.

    from derain_edge.progress import progress

    for pair in progress(pairs, desc="evaluating", unit="img"):
        ...
    bar = progress(total=n, desc="LPNet", unit="it", initial=step)
    bar.update(1); bar.set_postfix(loss=0.1); bar.close()

``progress`` takes tqdm's arguments and returns a tqdm bar when its stream (stderr by default) is a terminal. When
it is not (a log file, CI, ``nohup``, a pipe) tqdm would print either nothing or one carriage-return-joined blob;
there it returns a :class:`PlainProgress` instead, which prints one plain line every few seconds
(``desc: 120/500 img (24%), 3.1 img/s, ETA 2m03s``) and a last line when it closes. ``DERAIN_PROGRESS_INTERVAL``
(seconds, default 5) sets the period; ``DERAIN_PROGRESS=tty|plain|off`` forces one kind.

:class:`Steps` is the numbered, timed step log of derain-export (``[2/7] export onnx fp32 …`` / ``done in 3.1 s``).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Iterable, Iterator

DEFAULT_INTERVAL = 5.0

__all__ = ["progress", "PlainProgress", "Steps", "write", "is_terminal"]


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("DERAIN_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class PlainProgress:
    """The part of tqdm's interface the project uses, printing a plain line at most every `interval` seconds.

    Iterable (``for x in PlainProgress(items)``), a context manager, and ``update``/``close``/``set_postfix``/
    ``set_postfix_str``/``set_description``/``refresh``/``reset``/``write``; ``n``, ``total`` and ``desc`` like tqdm.
    """

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str | None = None,
                 unit: str = "it", file=None, interval: float | None = None, initial: float = 0,
                 disable: bool = False, leave: bool = True, clock: Callable[[], float] = time.monotonic, **_ignored):
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.total = total
        self.desc = desc or ""
        self.unit = unit
        self.file = file
        self.interval = _interval() if interval is None else float(interval)
        self.n = initial
        self.initial = initial
        self.disable = bool(disable)
        self.leave = leave
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._postfix = ""
        self._closed = False

    # ---- tqdm interface
    def __iter__(self):
        if self.iterable is None:
            raise TypeError("PlainProgress without an iterable is not iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(self.line(now))

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self._postfix = ", ".join(f"{k}={_fmt(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    set_description_str = set_description

    def refresh(self) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total
        self._start = self._last = self._clock()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.leave and (self.n != self.initial or self.total):
            elapsed = self._clock() - self._start
            self._print(f"{self._head()}{self._count()} done in {_duration(elapsed)}{self._tail()}")

    def write(self, s: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        write(s, file=file or self.file, end=end)

    # ---- formatting
    def _head(self) -> str:
        return f"{self.desc}: " if self.desc else ""

    def _count(self) -> str:
        n = _fmt(self.n)
        return f"{n}/{_fmt(self.total)} {self.unit}" if self.total else f"{n} {self.unit}"

    def _tail(self) -> str:
        return f" [{self._postfix}]" if self._postfix else ""

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        done = self.n - self.initial
        rate = done / elapsed
        parts = [self._head() + self._count()]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        if done > 0:
            parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}")
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and done > 0 and self.n < self.total:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        return ", ".join(parts) + self._tail()

    def _print(self, text: str) -> None:
        stream = self.file if self.file is not None else sys.stderr
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):  # a closed log must not stop the work
            pass


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if not v.is_integer() else str(int(v))
    return str(v)


def _mode(file) -> str:
    forced = os.environ.get("DERAIN_PROGRESS", "").strip().lower()
    if forced in ("tty", "plain", "off"):
        return forced
    return "tty" if is_terminal(file) else "plain"


def progress(iterable: Iterable | None = None, total: float | None = None, desc: str | None = None,
             unit: str = "it", *, file=None, disable: bool | None = False, leave: bool = True,
             interval: float | None = None, **kwargs):
    """tqdm on a terminal, :class:`PlainProgress` (a line every few seconds) otherwise.

    Takes tqdm's arguments (``initial``, ``dynamic_ncols``, ``position``… are passed to tqdm and ignored by the
    plain reporter). ``disable=True`` shows nothing; ``disable=None`` means the same as False here (tqdm would hide
    the bar when not on a terminal, which is what this helper exists to avoid)."""
    mode = _mode(file)
    if disable or mode == "off":
        return PlainProgress(iterable, total=total, desc=desc, unit=unit, file=file, disable=True, **kwargs)
    if mode == "tty":
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=file if file is not None else sys.stderr,
                    leave=leave, **kwargs)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, file=file, leave=leave, interval=interval,
                         **kwargs)


def write(message: str, file=None, end: str = "\n") -> None:
    """Prints a message without breaking a live tqdm bar (tqdm.write), or plainly when no bar is drawn."""
    stream = file if file is not None else sys.stderr
    if is_terminal(stream):
        from tqdm import tqdm

        tqdm.write(message, file=stream, end=end)
    else:
        print(message, file=stream, end=end, flush=True)


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
