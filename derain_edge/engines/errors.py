"""The engines' exceptions (re-exported by ``runtime.errors``): a one-line reason the CLIs print as ``error: …``."""
from __future__ import annotations


class RuntimeErrorBase(ValueError):
    """Base of the runtime's user-facing errors (bad model path, unusable backend, bad source or sink)."""


class BackendError(RuntimeErrorBase):
    """A model/artifact that cannot be loaded by the requested backend, with the reason and what to install."""
