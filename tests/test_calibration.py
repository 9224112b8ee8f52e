"""calibration/: synthetic default (with its warning), image folders, diverse video frames, .npy round trips, errors."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from calibration import CalibrationError, build_calibration, load_calibration, save_calibration
from calibration.build import SyntheticCalibrationWarning
from calibration.video import diverse_indices

from conftest import add_rain, make_clean, write_png


def test_synthetic_default_warns_and_is_seeded():
    with pytest.warns(SyntheticCalibrationWarning, match="real frames from the target camera"):
        a = build_calibration(None, count=3, size=(24, 40), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = build_calibration(None, count=3, size=(24, 40), seed=1, warn=False)
        c = build_calibration(None, count=3, size=(24, 40), seed=2, warn=False)
    assert a.data.shape == (3, 3, 24, 40) and a.data.dtype == np.float32
    assert np.array_equal(a.data, b.data) and not np.array_equal(a.data, c.data)
    assert 0.0 <= a.data.min() and a.data.max() <= 1.0
    assert a.data.std() > 0.05  # scenes with structure, not flat frames
    s = a.summary
    assert s["count"] == 3 and s["size"] == [24, 40] and s["source"].startswith("synthetic")
    assert s["value_range"][0] >= 0.0 and s["value_range"][1] <= 1.0


def test_image_folder_resized_and_evenly_sampled(tmp_path):
    imgs = {}
    for i in range(6):
        imgs[i] = add_rain(make_clean(50 + i, 30, seed=i), seed=i)
        write_png(tmp_path / f"{i}.png", imgs[i])
    cs = build_calibration(tmp_path, count=3, size=(16, 20))
    assert cs.data.shape == (3, 3, 16, 20)
    assert cs.names == ["0.png", "2.png", "5.png"]
    expect = cv2.resize(imgs[5], (20, 16), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 255.0
    assert np.allclose(cs.data[2], expect, atol=1e-6)
    assert cs.summary["source"] == f"images:{tmp_path}"


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("empty", "no images"),
    ("corrupt", "not a readable image"),
    ("unknown", "neither a folder of images"),
    ("bad_video", "cannot be opened"),
])
def test_unreadable_sources_give_clear_errors(tmp_path, case, message):
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "empty":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "corrupt":
        src = tmp_path / "frames"
        write_png(src / "ok.png", make_clean(20, 20, 0))
        (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif case == "unknown":
        src = tmp_path / "notes.txt"
        src.write_text("hello")
    else:
        src = tmp_path / "clip.mp4"
        src.write_bytes(b"definitely not a video")
    with pytest.raises(CalibrationError, match=message):
        build_calibration(src, count=2, size=(16, 16))


def test_bad_count_and_size():
    with pytest.raises(CalibrationError, match="count"):
        build_calibration(None, count=0, warn=False)
    with pytest.raises(CalibrationError, match="at least 8x8"):
        build_calibration(None, count=1, size=(4, 4), warn=False)


def test_diverse_indices_prefers_distinct_frames():
    rng = np.random.default_rng(0)
    a, b, c = (rng.random(8) for _ in range(3))
    feats = np.stack([a] * 20 + [b] * 3 + [c] * 2) + rng.normal(0, 1e-4, (25, 8))
    chosen = diverse_indices(feats, 3)
    groups = {0 if i < 20 else 1 if i < 23 else 2 for i in chosen}
    assert groups == {0, 1, 2}  # one from each scene, although scene a fills 80 % of the frames
    assert diverse_indices(feats[:2], 5) == [0, 1]


def test_video_frames_cover_every_scene(tmp_path):
    path = tmp_path / "clip.avi"
    scenes = [make_clean(64, 48, seed=s) for s in (0, 1, 2)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    plan = [0] * 24 + [1] * 4 + [2] * 4  # a long first shot, two short ones
    for k in plan:
        writer.write(np.ascontiguousarray(scenes[k][:, :, ::-1]))
    writer.release()
    cs = build_calibration(path, count=3, size=(48, 64))
    frames = sorted(int(n.split("-")[1]) for n in cs.names)
    assert len(frames) == 3
    assert {plan[f] for f in frames} == {0, 1, 2}
    # the stored pixels are those frames (MJPEG-close to the scene the frame number says)
    for x, f in zip(cs.data, frames):
        err = [np.abs(x.transpose(1, 2, 0) - s / 255.0).mean() for s in scenes]
        assert int(np.argmin(err)) == plan[f] and min(err) < 0.03


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_save_load_round_trip_with_summary(tmp_path, layout):
    data = build_calibration(None, count=2, size=(16, 24), warn=False).data
    path = save_calibration(data, tmp_path / f"calib_{layout}.npy", layout, "synthetic")
    raw = np.load(path)
    assert raw.shape == ((2, 3, 16, 24) if layout == "NCHW" else (2, 16, 24, 3))
    assert np.array_equal(load_calibration(path), data)
    summary = json.loads((tmp_path / f"calib_{layout}.npy.json").read_text())
    assert summary["layout"] == layout and summary["count"] == 2 and summary["shape"] == list(raw.shape)
    # a saved set is itself a calibration source
    assert np.array_equal(build_calibration(path, size=(16, 24)).data, data)


def test_load_rejects_unscaled_or_malformed_arrays(tmp_path):
    np.save(tmp_path / "u8.npy", np.full((1, 3, 8, 8), 200.0, np.float32))
    with pytest.raises(CalibrationError, match=r"\[0, 1\]"):
        load_calibration(tmp_path / "u8.npy")
    np.save(tmp_path / "flat.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(CalibrationError, match="N×3×H×W"):
        load_calibration(tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_bytes(b"nope")
    with pytest.raises(CalibrationError, match="not a readable"):
        load_calibration(tmp_path / "junk.npy")
