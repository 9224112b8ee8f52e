"""The engines that run an exported artifact, one per format, and the one fixed-size policy: the small shared layer
below both ``export`` (parity and accuracy cost of what it writes) and ``runtime`` (``Derainer``, ``derain-run``,
``derain-bench``), so the number in a sidecar is the number a user gets.

``derain_edge.engines.backends``: one class per engine (PyTorch, onnxruntime, OpenVINO, OpenCV DNN, LiteRT, CoreML,
TensorRT), N×3×H×W float32 RGB [0, 1] in and out, the artifact's own I/O adapted from its sidecar contract.
``derain_edge.engines.tiling``: ``run_fitted`` — a dynamic engine gets the frame as it is (padded to its alignment or
minimum), a fixed-size one gets it padded to the smallest size that holds it, or tiled with overlap and blended.
``derain_edge.engines.threads``: default inference threads. ``derain_edge.engines.errors``: ``BackendError``.
Engines' optional packages are imported when an engine is opened (``derain_edge.optional``).
"""
