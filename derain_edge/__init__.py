"""derain-edge: the parts every model shares — image I/O, metrics, rain synthesis, checkpoints, the CLIs."""
__version__ = "0.1.0"
