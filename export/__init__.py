"""derain-export: ONNX, TensorRT (Jetson), CoreML and TFLite artifacts, each checked against PyTorch.

``export.formats`` is the table of targets; ``export.exporter`` the pipeline (validate → export → parity → accuracy
cost → sidecar, rejecting artifacts over their limit); ``export.cli`` the ``derain-export`` command. Per target:
``export.onnx_export`` (``torch_to_onnx``), ``export.jetson`` (+ ``export.qdq``, ``export.tensorrt_build``),
``export.coreml``, ``export.tflite``. Backends are imported lazily: ``import export`` pulls in none of them.
"""
