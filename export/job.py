"""What every export target takes: ``export_<target>(model, job)`` with one ``ExportJob``.

The job says where and what to write (``out_dir``, ``stem``, ``precision``), at which sizes (``sizes``: None keeps a
dynamic H×W where the target can), with which calibration frames (``calib``, N×3×H×W float32 RGB in [0, 1]) and
validation pairs (``val``, measured by the exporter after the target returns), the model's export hints from the
registry (``hints``: e.g. TFLite int16x8 splits ``hints.int8_sensitive_weights``), the ONNX opset, the nodes to keep
in float in an INT8 Q/DQ graph, and target-specific ``options`` (jetson: ``method``; triton: ``max_batch``).

``ExportJob.check(fmt, error)`` is the one check of a job against its target's row of the formats table
(``export.formats``): every ``export_<target>`` calls it first, so a bad precision, size or calibration set fails
the same way, before any work, whichever target it is given to. (Command-line arguments are checked earlier, in
``export.exporter.validate``.)

``workspace`` is the run's scratch space (a temporary folder and the FP32 ONNX exported once per weights and opset,
shared by every target and precision of one ``derain-export`` run): it replaces the module-level caches the targets
used to keep. A job without one gets a private workspace on first use. Fields are keyword-only.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derain_edge.registry import ExportHints


class Workspace:
    """Scratch space of one export run: ``path`` (removed by ``close()`` or when collected), the FP32 ONNX files by
    (weights digest, opset), and the per-layer sensitivity results by their inputs (onnx and jetson INT8 share them)."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="derain-export-")
        self.path = Path(self._tmp.name)
        self.fp32: dict[tuple, Path] = {}
        self.sensitivity: dict[tuple, dict] = {}

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(kw_only=True, eq=False)
class ExportJob:
    out_dir: Path
    stem: str                                          # file-name stem: the model's registry name ("lpnet", "anlcl")
    precision: str                                     # "fp32" | "fp16" | "int8" | "int16x8"
    sizes: list[tuple[int, int]] | None = None         # (H, W) each; None = dynamic H×W
    calib: np.ndarray | None = None                    # N×3×H×W float32 RGB [0, 1] (int8 / int16x8)
    val: list | None = None                            # validation pairs (export.cost.Pair), measured by the exporter
    hints: ExportHints = field(default_factory=ExportHints)
    opset: int = 20
    nodes_to_exclude: tuple[str, ...] = ()             # INT8 Q/DQ: nodes kept in float (export.sensitivity)
    options: dict = field(default_factory=dict)        # target-specific: {"method": "minmax"}, {"max_batch": 8}
    workspace: Workspace | None = None

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.nodes_to_exclude = tuple(self.nodes_to_exclude or ())
        self.options = dict(self.options or {})

    def check(self, fmt, error: type[Exception] = ValueError) -> ExportJob:
        """Checks the job against `fmt` (an ``export.formats.Format``) and normalizes it in place; raises `error`
        naming the problem. Precision: one `fmt` allows. Sizes: (H, W) pairs of positive ints, repeats dropped; a
        fixed-size target gets the camera defaults when none are given (None), and refuses an empty list. Calibration
        (the precisions in ``fmt.calibrated``): N×3×H×W finite floats in [0, 1], made float32."""
        from .artifact import unique_sizes
        from .formats import DEFAULT_SIZES

        if self.precision not in fmt.precisions:
            hint = " (int16x8 is a TFLite scheme)" if self.precision == "int16x8" else ""
            raise error(f"{fmt.name} precision must be one of {', '.join(fmt.precisions)}, got {self.precision!r}"
                        + hint)
        if self.sizes is not None:
            self.sizes = unique_sizes(self.sizes, error)
        if not fmt.dynamic:
            if self.sizes is None:
                self.sizes = [tuple(s) for s in DEFAULT_SIZES]
            elif not self.sizes:
                raise error(f"{fmt.name} needs at least one fixed size (H, W): it cannot keep a dynamic H×W "
                            "(one artifact per size)")
        if self.precision in fmt.calibrated:
            self.calib = _checked_calibration(self.calib, f"{fmt.name} {self.precision}", error)
        return self

    def scratch(self) -> Workspace:
        """The run's workspace (a private one, made now, when the job came without)."""
        if self.workspace is None:
            self.workspace = Workspace()
        return self.workspace

    def replace(self, **changes) -> ExportJob:
        """A copy with `changes` (same workspace, so the FP32 ONNX is not exported again)."""
        self.scratch()
        return dataclasses.replace(self, **changes)


def _checked_calibration(calib, what: str, error: type[Exception]) -> np.ndarray:
    if calib is None:
        raise error(f"{what} needs calibration images (N×3×H×W float32 RGB in [0, 1]); pass --calib or let the "
                    "exporter synthesize them")
    calib = np.asarray(calib)
    if calib.ndim != 4 or calib.shape[1] != 3 or calib.shape[0] < 1:
        raise error(f"calibration images must be N×3×H×W RGB, got shape {calib.shape}")
    if not np.issubdtype(calib.dtype, np.floating) or not np.isfinite(calib).all():
        raise error(f"calibration images must be finite floats in [0, 1], got {calib.dtype}")
    if calib.min() < -1e-3 or calib.max() > 1 + 1e-3:
        raise error(f"calibration images must be in [0, 1], got [{calib.min():.3g}, {calib.max():.3g}] "
                    "(0–255 images? divide by 255)")
    return calib.astype(np.float32, copy=False)
