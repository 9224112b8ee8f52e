"""Fitting any frame to an engine (pad, or tile with overlap and blend): the one fixed-size policy lives in
``derain_edge.engines.tiling`` (shared with the exporter's parity and cost checks); re-exported here."""
from derain_edge.engines.tiling import (_min_overlap, _ramp, align_up, choose_size, pad_nchw,  # noqa: F401
                                        run_fitted, run_tiled, tile_starts)
