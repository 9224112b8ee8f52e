"""Tests of the rain renderer (derain_edge.rain) and the derain-synth CLI (derain_edge.commands.synth)."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from derain_edge.rain import RainConfig, render_rain, residual_statistics, streak_angle
from derain_edge.commands.synth import main as synth_main

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLEAN_BSD = SHARED / "data" / "clean" / "cbsd68"


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A clean-looking test image: smooth colour gradients plus mild texture, values well inside [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.3 + 0.2 * np.sin(x / 17.0), 0.35 + 0.15 * np.cos(y / 13.0),
                    0.3 + 0.1 * np.sin((x + y) / 29.0)], -1)
    img += 0.03 * rng.standard_normal((h, w, 3)).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def luma(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114], np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / float(np.mean((luma(a) - luma(b)) ** 2)))


ALL_EFFECTS = RainConfig(veil_prob=1.0, drop_prob=1.0)


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("cfg", [None, RainConfig.light(), ALL_EFFECTS, RainConfig(blend="screen", scale=1.7)])
def test_same_seed_gives_bit_identical_output(cfg):
    img = textured(96, 128)
    a = render_rain(img, np.random.default_rng(123), cfg)
    b = render_rain(img, np.random.default_rng(123), cfg)
    assert a.tobytes() == b.tobytes()


def test_output_does_not_depend_on_opencv_thread_count():
    img = textured(200, 240)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        a = render_rain(img, np.random.default_rng(9), ALL_EFFECTS)
        cv2.setNumThreads(4)
        b = render_rain(img, np.random.default_rng(9), ALL_EFFECTS)
    finally:
        cv2.setNumThreads(before)
    assert a.tobytes() == b.tobytes()


def test_different_seeds_differ():
    img = textured(96, 128)
    outs = [render_rain(img, np.random.default_rng(s)) for s in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(outs[i] - outs[j]).mean() > 0.01


def test_rng_state_advances_so_consecutive_calls_differ():
    rng = np.random.default_rng(7)
    img = textured(64, 64)
    assert not np.array_equal(render_rain(img, rng), render_rain(img, rng))


# ------------------------------------------------------------------------------- shape / dtype / range


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (5, 7), (97, 131), (96, 96), (2, 300)])
@pytest.mark.parametrize("cfg", [None, RainConfig.light(), ALL_EFFECTS])
def test_shape_dtype_and_range_preserved(hw, cfg):
    img = textured(*hw, seed=1)
    out = render_rain(img, np.random.default_rng(0), cfg)
    assert out.shape == img.shape
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_accepted_and_extremes_stay_in_range(dtype):
    for value in (0.0, 1.0):
        img = np.full((40, 30, 3), value, dtype)
        out = render_rain(img, np.random.default_rng(0), ALL_EFFECTS)
        assert out.dtype == np.float32 and out.shape == img.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert render_rain(np.zeros((40, 30, 3), dtype), np.random.default_rng(0)).max() > 0.1  # rain is visible


def test_input_not_modified_and_readonly_input_works():
    img = textured(64, 80)
    before = img.copy()
    img.flags.writeable = False
    out = render_rain(img, np.random.default_rng(5), ALL_EFFECTS)
    assert np.array_equal(img, before)
    assert out is not img and not np.shares_memory(out, img)
    view = textured(64, 160)[:, ::2]  # non-contiguous view
    keep = view.copy()
    render_rain(view, np.random.default_rng(5))
    assert np.array_equal(view, keep)


def test_rain_only_brightens_in_additive_mode_without_veil():
    """Rain100H residuals are never negative: additive streaks, clipped at white."""
    img = textured(80, 80)
    out = render_rain(img, np.random.default_rng(3), RainConfig(veil_prob=0.0, drop_prob=0.0))
    assert (out - img).min() >= -1e-6
    assert (out - img).mean() > 0.05


# --------------------------------------------------------------------------------------- rain strength


def test_heavy_rain_lowers_psnr_more_than_light_rain():
    img = textured(128, 160)
    heavy = [psnr(render_rain(img, np.random.default_rng(s), RainConfig.heavy()), img) for s in range(6)]
    light = [psnr(render_rain(img, np.random.default_rng(s), RainConfig.light()), img) for s in range(6)]
    assert np.mean(heavy) + 8.0 < np.mean(light), (heavy, light)
    assert sum(h < l for h, l in zip(heavy, light)) >= 5, (heavy, light)  # per-image ranges may overlap a little
    assert 8.0 < np.mean(heavy) < 19.0  # Rain100H: PSNR-Y 10–17 dB for 80 % of its pairs
    assert 22.0 < np.mean(light) < 40.0


def test_density_and_intensity_increase_the_residual():
    img = np.zeros((96, 96, 3), np.float32)
    base = dict(veil_prob=0.0, drop_prob=0.0, layers=(2, 2))

    def mean_res(**kw):
        cfg = RainConfig(**{**base, **kw})
        return np.mean([render_rain(img, np.random.default_rng(s), cfg).mean() for s in range(3)])

    assert mean_res(density=(60, 60)) > 1.5 * mean_res(density=(20, 20))
    assert mean_res(intensity=(0.3, 0.3)) > 1.5 * mean_res(intensity=(0.15, 0.15))


# --------------------------------------------------------------------------------------- geometry


def _single_direction(angle: float, **kw) -> RainConfig:
    return RainConfig(angle=(angle, angle), layer_angle_jitter=0.0, veil_prob=0.0, drop_prob=0.0, **kw)


@pytest.mark.parametrize("angle", [-20.0, -8.0, 0.0, 5.0, 15.0])
def test_streak_orientation_follows_configured_angle(angle):
    img = np.zeros((160, 160, 3), np.float32)
    out = render_rain(img, np.random.default_rng(11), _single_direction(angle, width=(1.5, 1.5)))
    measured, coherence = streak_angle(luma(out))
    assert abs(measured - angle) < 2.0, (angle, measured)
    assert coherence > 0.7


def test_positive_angle_means_lower_end_to_the_right():
    """Independent of the structure tensor: a streak continues down-and-right for angle > 0."""
    img = np.zeros((160, 160, 3), np.float32)
    y = luma(render_rain(img, np.random.default_rng(2), _single_direction(20.0, length=(60, 60))))
    y = y - y.mean()
    dy, dx = 12, round(12 * math.tan(math.radians(20)))
    right = float((y[:-dy, :-dx] * y[dy:, dx:]).mean())  # pixel below-right
    left = float((y[:-dy, dx:] * y[dy:, :-dx]).mean())   # pixel below-left
    assert right > 3 * max(left, 1e-9)


def test_scale_makes_streaks_longer_and_wider():
    img = textured(192, 192)
    s1 = residual_statistics(render_rain(img, np.random.default_rng(4), _single_direction(0.0)), img)
    s2 = residual_statistics(render_rain(img, np.random.default_rng(4), _single_direction(0.0, scale=2.5)), img)
    assert s2["length"] > 1.5 * s1["length"]
    assert s2["width"] > 1.5 * s1["width"]


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad, words",
    [
        ([[0.5, 0.5, 0.5]], "numpy array"),
        (np.zeros((8, 8), np.float32), "H×W×3"),
        (np.zeros((8, 8, 4), np.float32), "H×W×3"),
        (np.zeros((8, 8, 1), np.float32), "H×W×3"),
        (np.zeros((0, 8, 3), np.float32), "1×1"),
        (np.zeros((8, 8, 3), np.uint8), "float"),
        (np.zeros((8, 8, 3), bool), "float"),
        (np.full((8, 8, 3), 1.5, np.float32), "[0, 1]"),
        (np.full((8, 8, 3), -0.2, np.float32), "[0, 1]"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((8, 8, 3), np.inf, np.float64), "NaN"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(bad, words):
    with pytest.raises(ValueError) as info:
        render_rain(bad, np.random.default_rng(0))
    assert words in str(info.value)


def test_a_single_nan_is_caught():
    img = textured(16, 16)
    img[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render_rain(img, np.random.default_rng(0))


def test_bad_rng_and_config():
    img = textured(8, 8)
    with pytest.raises(TypeError, match="Generator"):
        render_rain(img, 42)
    with pytest.raises(TypeError, match="RainConfig"):
        render_rain(img, np.random.default_rng(0), {"density": (1, 2)})
    for kw, word in [({"density": (5, 1)}, "density"), ({"blend": "multiply"}, "blend"), ({"layers": (0, 2)}, "layers"),
                     ({"scale": 0}, "scale"), ({"intensity": (0.1, 2.0)}, "intensity"), ({"width": "wide"}, "width")]:
        with pytest.raises(ValueError, match=word):
            RainConfig(**kw)


def test_presets():
    assert RainConfig.heavy() == RainConfig()
    light = RainConfig.light(scale=2.0)
    assert light.scale == 2.0 and light.veil_prob == 0.0 and light.density[1] < RainConfig().density[0]
    assert RainConfig().replace(scale=3).scale == 3.0


# --------------------------------------------------------------------------------------- CLI


@pytest.fixture()
def clean_dir(tmp_path: Path) -> Path:
    """Tiny folder of mixed inputs: RGB PNG, JPEG, grayscale, 16-bit, RGBA, plus a corrupt file and a text file."""
    d = tmp_path / "clean"
    d.mkdir()
    rgb = (textured(48, 64) * 255).round().astype(np.uint8)[:, :, ::-1]
    cv2.imwrite(str(d / "rgb.png"), rgb)
    cv2.imwrite(str(d / "photo.jpg"), rgb[:40, :50])
    cv2.imwrite(str(d / "gray.png"), rgb[:, :, 1])
    cv2.imwrite(str(d / "deep16.png"), rgb[:33, :45].astype(np.uint16) * 257)
    cv2.imwrite(str(d / "alpha.png"), np.dstack([rgb[:20, :30], np.full((20, 30), 128, np.uint8)]))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (d / "notes.txt").write_text("not an image")
    return d


EXPECTED = {"rgb": (48, 64), "photo": (40, 50), "gray": (48, 64), "deep16": (33, 45), "alpha": (20, 30)}


def test_cli_writes_matched_pairs(clean_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert synth_main(["--clean", str(clean_dir), "--out", str(out), "--seed", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err and "skipping" in err  # corrupt file named, then skipped
    assert "16-bit" in err and "grayscale" in err and "alpha" in err  # conversions reported
    rainy = {p.stem: p for p in (out / "rainy").iterdir()}
    clean = {p.stem: p for p in (out / "clean").iterdir()}
    assert set(rainy) == set(clean) == set(EXPECTED)  # no temp files left behind either
    for name, (h, w) in EXPECTED.items():
        r = cv2.imread(str(rainy[name]), cv2.IMREAD_UNCHANGED)
        c = cv2.imread(str(clean[name]), cv2.IMREAD_UNCHANGED)
        assert r.shape == c.shape == (h, w, 3) and r.dtype == c.dtype == np.uint8
        assert (r.astype(int) - c.astype(int)).mean() > 3  # the rainy one has rain on it
    gray = cv2.imread(str(clean["gray"]))
    assert np.array_equal(gray[:, :, 0], gray[:, :, 1])  # grayscale replicated, not recoloured

    # same seed ⇒ same files; another seed ⇒ other rain
    out2, out3 = tmp_path / "out2", tmp_path / "out3"
    synth_main(["--clean", str(clean_dir), "--out", str(out2), "--seed", "3", "--quiet"])
    synth_main(["--clean", str(clean_dir), "--out", str(out3), "--seed", "4", "--quiet"])
    assert (out / "rainy" / "rgb.png").read_bytes() == (out2 / "rainy" / "rgb.png").read_bytes()
    assert (out / "rainy" / "rgb.png").read_bytes() != (out3 / "rainy" / "rgb.png").read_bytes()


def test_cli_n_cycles_with_new_rain_and_contact_sheet(clean_dir: Path, tmp_path: Path):
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    ref = tmp_path / "ref"
    ref.mkdir()
    cv2.imwrite(str(ref / "real.png"), (textured(60, 90, seed=9) * 255).astype(np.uint8))
    rc = synth_main(["--clean", str(clean_dir), "--out", str(out), "--n", "7", "--quiet",
                     "--contact-sheet", str(sheet), "--reference", f"Real={ref}", "--sheet-rows", "2"])
    assert rc == 0
    names = sorted(p.stem for p in (out / "rainy").iterdir())
    assert len(names) == 7 and sorted(p.stem for p in (out / "clean").iterdir()) == names
    assert "alpha_rain1" in names or "deep16_rain1" in names
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 1400 and sheet.stat().st_size < 1.5e6


@pytest.mark.parametrize("setup, words", [("missing", "folder not found"), ("empty", "no images"),
                                           ("only_broken", "could be read"), ("a_file", "not a folder")])
def test_cli_clear_errors(tmp_path: Path, capsys, setup, words):
    d = tmp_path / "in"
    if setup != "missing":
        if setup == "a_file":
            d.write_text("x")
        else:
            d.mkdir()
            (d / "readme.txt").write_text("no images here")
            if setup == "only_broken":
                (d / "bad.jpg").write_bytes(b"garbage")
    rc = synth_main(["--clean", str(d), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0
    assert words in err and "Traceback" not in err


def test_cli_needs_something_to_do(clean_dir: Path, capsys):
    assert synth_main(["--clean", str(clean_dir), "--quiet"]) == 2
    assert "nothing to do" in capsys.readouterr().err


def test_cli_bad_reference_is_reported_before_rendering(clean_dir: Path, tmp_path: Path, capsys):
    rc = synth_main(["--clean", str(clean_dir), "--contact-sheet", str(tmp_path / "s.png"),
                     "--reference", str(tmp_path / "nope"), "--quiet"])
    assert rc == 2 and "folder not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------ against Rain100H (shared data)


@pytest.mark.skipif(not CLEAN_BSD.is_dir(), reason=f"shared clean images not found at {CLEAN_BSD}")
def test_heavy_defaults_match_rain100h_residual_statistics():
    """Over BSD photos (Rain100H's own source), heavy rain lands in Rain100H's measured ranges:
    mean PSNR-Y 13.9 dB (p10–p90 10.1–16.8), mean residual 0.21, 67 % of pixels with residual > 0.1."""
    files = sorted(CLEAN_BSD.glob("*.png"))[:8]
    stats = []
    for i, f in enumerate(files):
        clean = cv2.imread(str(f))[:, :, ::-1].astype(np.float32) / 255.0
        stats.append(residual_statistics(render_rain(clean, np.random.default_rng(i)), clean))
    mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
    assert 11.5 < mean["psnr_y"] < 16.5, mean
    assert 0.13 < (mean["mean_r"] + mean["mean_g"] + mean["mean_b"]) / 3 < 0.30, mean
    assert 0.5 < mean["frac_gt_0.1"] < 0.85, mean
    assert np.mean([abs(s["angle"]) for s in stats]) < 12.0
