"""derain_edge.imageio: conversions to RGB uint8, errors that name the file, natural order, pairing, atomic writes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from derain_edge.imageio import ImageError, list_images, list_pairs, read_image, to_rgb_uint8, write_image

from conftest import make_clean, write_png

RED_BGR = (0, 0, 255)


def test_rgb_roundtrip_keeps_channel_order(tmp_path):
    rgb = make_clean(23, 17, seed=1)
    path = write_image(tmp_path / "a.png", rgb)
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == (17, 23, 3)
    assert np.array_equal(back, rgb)
    # the file on disk is BGR (OpenCV order): the conversion happens at the boundary
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], rgb)


def test_pure_red_file_reads_as_red(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[:] = RED_BGR
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_image(tmp_path / "red.png")
    assert rgb[0, 0].tolist() == [255, 0, 0]


def test_grayscale_replicated(tmp_path):
    gray = np.arange(12 * 9, dtype=np.uint8).reshape(9, 12)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (9, 12, 3)
    for c in range(3):
        assert np.array_equal(rgb[..., c], gray)


def test_bgra_alpha_dropped(tmp_path):
    bgra = np.zeros((6, 7, 4), np.uint8)
    bgra[..., :3] = RED_BGR
    bgra[..., 3] = np.arange(7, dtype=np.uint8) * 30  # varying alpha must not matter
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED).shape[2] == 4
    rgb = read_image(tmp_path / "a.png")
    assert rgb.shape == (6, 7, 3)
    assert (rgb == np.array([255, 0, 0], np.uint8)).all()


def test_16bit_scaled(tmp_path):
    values = np.array([[0, 257, 65535, 1000, 32896, 128]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), values)
    assert cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    rgb = read_image(tmp_path / "d.png")
    assert rgb[0, :, 0].tolist() == [0, 1, 255, 4, 128, 0]  # round(v / 257)
    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in BGR order
    assert to_rgb_uint8(bgr16)[0, 0].tolist() == [255, 0, 0]


def test_float_scaled_and_clipped(tmp_path):
    f = np.array([[0.0, 0.5, 1.0, 1.7, -0.2, 0.25]], dtype=np.float32)
    out = to_rgb_uint8(f)
    assert out.shape == (1, 6, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 128, 255, 255, 0, 64]
    # a float TIFF on disk takes the same path
    bgr = np.zeros((3, 4, 3), np.float32)
    bgr[..., 2] = 1.0
    assert cv2.imwrite(str(tmp_path / "f.tiff"), bgr)
    assert cv2.imread(str(tmp_path / "f.tiff"), cv2.IMREAD_UNCHANGED).dtype == np.float32
    assert read_image(tmp_path / "f.tiff")[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ImageError, match="NaN"):
        to_rgb_uint8(np.array([[np.nan, 0.1]], np.float32), name="x")


def test_unsupported_arrays():
    with pytest.raises(ImageError, match="shape"):
        to_rgb_uint8(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="int32"):
        to_rgb_uint8(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ImageError, match="empty"):
        to_rgb_uint8(np.zeros((0, 4, 3), np.uint8))


def test_corrupt_file_names_path(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert str(path) in str(e.value) and "not a readable image" in str(e.value)


def test_truncated_png_names_path(tmp_path):
    good = write_image(tmp_path / "t.png", make_clean(64, 48, seed=2))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="t.png"):
        read_image(good)


def test_empty_and_missing_file_names_path(tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(ImageError) as e:
        read_image(empty)
    assert str(empty) in str(e.value) and "empty" in str(e.value)
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "nope.png")
    assert "nope.png" in str(e.value) and "not found" in str(e.value)


def test_natural_sort_and_filtering(tmp_path):
    img = make_clean(4, 4, seed=0)
    for name in ["10.png", "2.png", "1.png", "img_11.jpg", "img_9.jpg", "B.PNG", "a.png"]:
        write_image(tmp_path / name, img)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an image
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["1.png", "2.png", "10.png", "a.png", "B.PNG", "img_9.jpg", "img_11.jpg"]


def test_list_images_errors(tmp_path):
    with pytest.raises(ImageError, match="folder not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError) as e:
        list_images(tmp_path / "empty")
    assert "empty" in str(e.value) and "no images" in str(e.value)


def test_list_pairs_matches_by_stem_in_natural_order(tiny_pairs):
    pairs = list_pairs(tiny_pairs.rainy, tiny_pairs.clean)
    assert [(r.name, c.name) for r, c in pairs] == [("1.png", "1.png"), ("2.png", "2.png"), ("10.png", "10.png")]
    assert all(r.parent == tiny_pairs.rainy and c.parent == tiny_pairs.clean for r, c in pairs)


def test_list_pairs_across_formats(tmp_path):
    img = make_clean(8, 8, seed=0)
    write_image(tmp_path / "r" / "5.jpg", img)
    write_image(tmp_path / "c" / "5.png", img)
    assert [(r.name, c.name) for r, c in list_pairs(tmp_path / "r", tmp_path / "c")] == [("5.jpg", "5.png")]


def test_list_pairs_mismatch_lists_names(tiny_pairs):
    (tiny_pairs.clean / "2.png").unlink()
    write_png(tiny_pairs.clean / "77.png", make_clean(8, 8, seed=0))
    with pytest.raises(ImageError) as e:
        list_pairs(tiny_pairs.rainy, tiny_pairs.clean)
    msg = str(e.value)
    assert "2.png" in msg and "77.png" in msg
    assert "without a clean partner" in msg and "without a rainy partner" in msg


def test_write_image_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.png"
    write_image(target, make_clean(10, 10, seed=0))  # creates the folder
    before = target.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.png"]  # no temp file left behind

    def crash(self, data):  # a write that dies half-way
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", crash)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, make_clean(10, 10, seed=5))
    monkeypatch.undo()
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.png"]  # and the half-written temp file is gone


def test_write_image_unknown_suffix(tmp_path):
    with pytest.raises(ImageError, match="suffix"):
        write_image(tmp_path / "x.nosuchformat", make_clean(4, 4, seed=0))
    assert list(tmp_path.iterdir()) == []


def test_float_0_255_frame_is_refused_not_clipped_to_white():
    frame = np.random.default_rng(0).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    with pytest.raises(ImageError, match=r"must be in \[0, 1\].*divide by 255"):
        to_rgb_uint8(frame, name="frame")
    assert to_rgb_uint8(frame / 255.0).max() > 200  # the same frame scaled to [0, 1] is fine


def test_derainer_refuses_float_0_255_frame():
    from runtime import Derainer

    d = Derainer(backend="pytorch")
    frame = np.full((16, 16, 3), 128.0, np.float32)
    with pytest.raises(ImageError, match="divide by 255"):
        d(frame)
    assert d((frame / 255.0).astype(np.float32)).shape == (16, 16, 3)
