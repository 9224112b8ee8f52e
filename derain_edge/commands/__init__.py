"""The command lines of training, evaluation, rain synthesis and the demo (derain-train/eval/synth/demo).

The top floor of the import graph (tests/test_import_layers.py): they may import the models, calibration, export
and runtime; nothing below imports them.
"""
