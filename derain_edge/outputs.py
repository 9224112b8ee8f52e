"""Output destinations checked before long work, OS errors turned into one-line messages, and the one way every
command reports a usage error (``fail``: ``error: …`` on stderr, exit code 2)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def fail(message: str) -> int:
    """Prints ``error: <message>`` to stderr; returns 2, the exit code of every command's usage errors."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def os_error_line(e: OSError) -> str:
    """'PATH: Permission denied' instead of a traceback."""
    where = e.filename or ""
    return f"{where}: {e.strerror or e}" if where else str(e.strerror or e)


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Raises PermissionError / NotADirectoryError now, not after an hour of work, when `path` (a file, or a
    folder with `folder=True`) cannot be written: its nearest existing folder must be writable."""
    path = Path(path)
    target = path if folder else path.parent
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(20, "not a folder", str(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied (not writable)", str(probe))
    if not folder and path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise PermissionError(13, "Permission denied (not writable)", str(path))
