"""The shared OpenCV runtime: one Derainer over every backend, camera/video sources, sinks, derain-run, derain-bench.

    from runtime import Derainer
    clean_bgr = Derainer("exports/lpnet_fp32.onnx")(frame_bgr)

See docs/runtime.md.
"""
from .derainer import AsyncDerainer, Derainer
from .errors import BackendError, ImageError, SinkError, SourceError
from .stabilize import TemporalStabilizer

__all__ = ["AsyncDerainer", "BackendError", "Derainer", "ImageError", "SinkError", "SourceError", "TemporalStabilizer"]
