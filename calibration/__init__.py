"""Calibration sets and INT8 / FP16 quantization with a measured accuracy cost.

Built by the export issue; nothing here yet.
"""
