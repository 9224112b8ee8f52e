"""derain-export: ONNX, TensorRT (Jetson), CoreML and TFLite artifacts, each checked against PyTorch.

Built by the export issue; nothing here yet.
"""
