"""The engines behind the Derainer: they live in ``derain_edge.engines.backends`` (the layer below both export and
runtime, so the exporter measures artifacts with the very engines users run); re-exported here."""
from derain_edge.engines.backends import (Backend, CoreMLBackend, IOAdapter, OpenCvDnnBackend,  # noqa: F401
                                          OpenVinoBackend, OrtBackend, TensorRTBackend, TfliteBackend, TorchBackend,
                                          _cpu_threads, _import, ort_providers, tflite_interpreter_class)
