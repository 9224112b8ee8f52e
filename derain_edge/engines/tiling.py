"""Fitting any frame to an engine (the one fixed-size policy; ``runtime.tiling`` re-exports it): pad small/odd frames
and crop back; tile big frames with overlap and blend (``run_fitted``).

Tiles overlap by `overlap` pixels; each tile's output is weighted by a window that ramps linearly from ~0 at a tile
edge that lies inside the frame to 1 after `overlap` pixels (edges on the frame border keep weight 1), and the sum is
normalised by the summed weights. The weights of overlapping tiles cross-fade, so no tile edge shows as a seam,
and the pixels a tile sees only near its border (where its context is cut) count least.
"""
from __future__ import annotations

import numpy as np


def pad_nchw(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pads bottom/right to h×w by mirror reflection (edge replication where a side is a single pixel)."""
    ph, pw = h - x.shape[2], w - x.shape[3]
    if ph < 0 or pw < 0:
        raise ValueError(f"cannot pad {x.shape[2]}x{x.shape[3]} down to {h}x{w}")
    if ph == 0 and pw == 0:
        return x
    mode = "symmetric" if min(x.shape[2:]) > 1 else "edge"
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)


def align_up(v: int, a: int) -> int:
    return -(-v // a) * a


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile` that overlap by at least `overlap`."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    n = -(-(length - tile) // step) + 1
    # spread the tiles evenly so every overlap is about the same (≥ overlap)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(tile: int, start: int, length: int, overlap: int) -> np.ndarray:
    r = np.ones(tile, np.float32)
    if overlap <= 0:
        return r
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    ramp = np.minimum(ramp, 1.0)
    if start > 0:  # left/top edge inside the frame
        r[:overlap] = np.minimum(r[:overlap], ramp)
    if start + tile < length:  # right/bottom edge inside the frame
        r[tile - overlap:] = np.minimum(r[tile - overlap:], ramp[::-1])
    return r


def run_tiled(fn, x: np.ndarray, tile_hw: tuple[int, int], overlap: int) -> np.ndarray:
    """fn: N×3×th×tw → same, for exactly tile_hw; returns fn applied to the whole of `x` (N×3×H×W)."""
    n, c, h, w = x.shape
    th, tw = tile_hw
    if h < th or w < tw:  # one axis fits: pad it up to the tile
        x = pad_nchw(x, max(h, th), max(w, tw))
    hp, wp = x.shape[2:]
    oy = min(overlap, th // 2)
    ox = min(overlap, tw // 2)
    ys, xs = tile_starts(hp, th, oy), tile_starts(wp, tw, ox)
    acc = np.zeros((n, c, hp, wp), np.float32)
    wsum = np.zeros((hp, wp), np.float32)
    for y0 in ys:
        wy = _ramp(th, y0, hp, min(oy, _min_overlap(ys, th)))
        for x0 in xs:
            wx = _ramp(tw, x0, wp, min(ox, _min_overlap(xs, tw)))
            wgt = wy[:, None] * wx[None, :]
            out = fn(np.ascontiguousarray(x[:, :, y0:y0 + th, x0:x0 + tw]))
            acc[:, :, y0:y0 + th, x0:x0 + tw] += out * wgt
            wsum[y0:y0 + th, x0:x0 + tw] += wgt
    return (acc / wsum)[:, :, :h, :w]


def _min_overlap(starts: list[int], tile: int) -> int:
    """The smallest actual overlap between neighbouring tiles (the ramps must fit inside it)."""
    if len(starts) < 2:
        return 0
    return min(tile - (b - a) for a, b in zip(starts, starts[1:]))


def choose_size(h: int, w: int, sizes: list[tuple[int, int]]) -> tuple[tuple[int, int], bool]:
    """The artifact size to use for an h×w frame and whether it must be tiled.

    A size that holds the whole frame wins (the smallest such, least padding); otherwise the size that needs the
    fewest tiled pixels.
    """
    fits = [s for s in sizes if s[0] >= h and s[1] >= w]
    if fits:
        return min(fits, key=lambda s: s[0] * s[1]), False

    def cost(s):
        th, tw = s
        o = min(64, th // 4, tw // 4)
        return len(tile_starts(h, th, o)) * len(tile_starts(w, tw, o)) * th * tw

    return min(sizes, key=cost), True


def run_fitted(engine, x: np.ndarray, overlap: int = 64, align: int = 1) -> np.ndarray:
    """N×3×H×W float32 [0, 1] through `engine` (a ``derain_edge.engines.backends.Backend``) at any H×W: a dynamic
    engine gets the frame padded up to `align` (and its minimum size), or tiled beyond its maximum; a fixed-size one
    the smallest of its sizes that holds the frame (padded), or overlapping tiles of its largest. Output cropped
    back to H×W; batches beyond the engine's ``max_batch`` go through in slices. What ``Derainer`` runs, and what
    the exporter measures parity and accuracy cost with."""
    n, _, h, w = x.shape
    if engine.max_batch is not None and n > engine.max_batch:
        step = engine.max_batch
        return np.concatenate([run_fitted(engine, x[i:i + step], overlap, align) for i in range(0, n, step)])
    if engine.sizes == "dynamic":
        if engine.max_size is not None and (h > engine.max_size[0] or w > engine.max_size[1]):
            tile = (min(engine.max_size[0], align_up(h, align)), min(engine.max_size[1], align_up(w, align)))
            return run_tiled(engine.run, x, tile, overlap)
        hp, wp = align_up(h, align), align_up(w, align)
        min_size = getattr(engine, "min_size", None)
        if min_size:
            hp, wp = max(hp, min_size[0]), max(wp, min_size[1])
        return engine.run(pad_nchw(x, hp, wp))[:, :, :h, :w]
    size, tiled = choose_size(h, w, engine.sizes)
    if tiled:
        return run_tiled(engine.run, x, size, overlap)
    return engine.run(pad_nchw(x, *size))[:, :, :h, :w]
