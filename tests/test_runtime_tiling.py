"""Fixed-size artifacts: frames larger than the artifact are tiled with overlap and blended without seams; smaller
and odd frames are padded and cropped back."""
from __future__ import annotations

import numpy as np
import pytest

import lpnet
from conftest import add_rain, make_clean
from runtime import Derainer
from runtime.tiling import choose_size, pad_nchw, run_tiled, tile_starts

TILE = (48, 64)


@pytest.fixture(scope="module")
def fixed_onnx(tmp_path_factory):
    from export.onnx_export import onnx_io, torch_to_onnx
    from export.sidecar import write_sidecar

    path = tmp_path_factory.mktemp("fixed") / "lpnet_fp32_48x64.onnx"
    torch_to_onnx(lpnet.load_pretrained(), path, size=TILE)
    inputs, outputs = onnx_io(path)
    write_sidecar(path, {"target": "onnx", "format": "onnx", "precision": "fp32", "model": "lpnet",
                         "weights_sha256": "0" * 64, "inputs": inputs, "outputs": outputs, "sizes": [list(TILE)]})
    return path


@pytest.fixture(scope="module")
def scene():
    return np.ascontiguousarray(add_rain(make_clean(150, 90, 3), 3)[:, :, ::-1])  # BGR, 90×150


@pytest.fixture(scope="module")
def full_frame(scene):
    return Derainer(threads=1, gate=False)(scene).astype(np.float32)  # gate off: tiling is tested, the gate in test_gate.py


@pytest.mark.parametrize("length, tile, overlap", [(150, 64, 16), (64, 64, 16), (65, 64, 16), (1000, 96, 32), (90, 48, 0)])
def test_tiles_cover_the_frame_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
    covered = np.zeros(max(length, tile), bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert all(tile - (b - a) >= overlap for a, b in zip(starts, starts[1:]))


def test_blending_weights_are_normalised():
    x = np.random.default_rng(0).random((2, 3, 101, 157)).astype(np.float32)
    y = run_tiled(lambda t: t, x, TILE, 16)
    assert y.shape == x.shape and np.abs(y - x).max() < 1e-5


def _seam_strength(tiled: np.ndarray, full: np.ndarray, overlap: int) -> tuple[float, float]:
    """Mean |∂x(tiled − full)| at the tiles' vertical edges and the median over all columns."""
    d = (tiled - full).mean(axis=2)
    gx = np.abs(np.diff(d, axis=1)).mean(axis=0)
    xs = tile_starts(full.shape[1], TILE[1], min(overlap, TILE[1] // 2))
    edges = sorted({x for x in xs[1:]} | {x + TILE[1] for x in xs[:-1]})
    return max(float(gx[e - 1]) for e in edges), float(np.median(gx))


def test_tiled_output_has_no_seams(fixed_onnx, scene, full_frame):
    from derain_edge.metrics import psnr_y

    blended = Derainer(fixed_onnx, gate=False, threads=1, overlap=16)
    assert blended.engine.sizes == [TILE]
    out = blended(scene)
    assert out.shape == scene.shape
    edge, typical = _seam_strength(out.astype(np.float32), full_frame, 16)
    assert edge < 2.5 * typical, (edge, typical)
    # the same check flags the seams of tiles that merely abut (overlap 0): the test can fail
    hard = Derainer(fixed_onnx, gate=False, threads=1, overlap=0)(scene).astype(np.float32)
    hard_edge, hard_typical = _seam_strength(hard, full_frame, 0)
    assert hard_edge > 4 * hard_typical, (hard_edge, hard_typical)
    # tiles see less context than the whole frame (LPNet's coarsest level spans it), so they differ a little
    assert psnr_y(out[:, :, ::-1], full_frame.astype(np.uint8)[:, :, ::-1]) > 26.0


def test_small_and_odd_frames_are_padded_and_cropped(fixed_onnx):
    d = Derainer(fixed_onnx, gate=False, threads=1)
    frame = np.ascontiguousarray(add_rain(make_clean(37, 23, 1), 1)[:, :, ::-1])
    out = d(frame)
    assert out.shape == (23, 37, 3)
    padded = np.pad(frame, ((0, TILE[0] - 23), (0, TILE[1] - 37), (0, 0)), mode="symmetric")
    assert np.abs(out.astype(int) - Derainer(threads=1, gate=False)(padded)[:23, :37].astype(int)).max() <= 1
    # a 1-pixel-wide frame cannot be mirrored: its edge is replicated
    assert d(frame[:, :1]).shape == (23, 1, 3)


def test_pad_and_choose_size():
    x = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    p = pad_nchw(x, 8, 9)
    assert p.shape == (2, 3, 8, 9) and np.array_equal(p[:, :, :5, :7], x)
    assert np.array_equal(p[:, :, 5, :7], x[:, :, 4])  # mirrored about the edge
    with pytest.raises(ValueError):
        pad_nchw(x, 4, 9)
    sizes = [(480, 640), (720, 1280), (1080, 1920)]
    assert choose_size(480, 640, sizes) == ((480, 640), False)
    assert choose_size(481, 641, sizes) == ((720, 1280), False)
    assert choose_size(2160, 3840, sizes)[1] is True
