"""derain_edge.metrics against an independent implementation (scikit-image) and hand-computed values."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

skimage = pytest.importorskip("skimage")
from skimage.color import rgb2ycbcr  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from derain_edge.metrics import psnr, psnr_y, rgb_to_y, ssim, ssim_y  # noqa: E402

from conftest import add_rain, make_clean  # noqa: E402


def sk_y(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's BT.601 Y: for uint8 input it works on [0, 1] floats and returns Y on the 16–235 scale."""
    y = rgb2ycbcr(rgb)[..., 0]
    assert 15.9 < y.min() and y.max() < 235.1  # the 0–255 studio-swing convention, same scale as ours
    return y


def sk_psnr(a, b):
    return peak_signal_noise_ratio(a, b, data_range=255)


def sk_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _image_pairs():
    rng = np.random.default_rng(7)
    noise_a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    noise_b = np.clip(noise_a.astype(int) + rng.integers(-40, 41, noise_a.shape), 0, 255).astype(np.uint8)
    scene = make_clean(96, 72, seed=3)
    rainy = add_rain(scene, seed=3)
    blurred = cv2.GaussianBlur(scene, (7, 7), 2.0)
    yy, xx = np.mgrid[0:50, 0:70]
    checker = (((yy // 5 + xx // 5) % 2) * 255).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, axis=2)
    shifted = np.roll(checker, 2, axis=1)
    return {
        "random-noise": (noise_a, noise_b),
        "random-independent": (noise_a, rng.integers(0, 256, noise_a.shape, dtype=np.uint8)),
        "scene-rain": (rainy, scene),
        "scene-blur": (blurred, scene),
        "checker-shift": (shifted, checker),
    }


PAIRS = _image_pairs()


@pytest.mark.parametrize("name", PAIRS)
def test_y_channel_matches_skimage(name):
    for img in PAIRS[name]:
        ours = rgb_to_y(img, round_y=False)
        np.testing.assert_allclose(ours, sk_y(img), rtol=0, atol=1e-9)
        rounded = rgb_to_y(img)
        assert np.array_equal(rounded, np.round(rounded))  # integers, as MATLAB's uint8 output
        ref = np.round(sk_y(img))
        differ = rounded != ref
        # only exact ties (true Y = k + 0.5, where the last float bit decides) may round differently
        assert np.all(np.abs(exact_y_times_255000(img)[differ] % 255000 - 127500) == 0)
        assert differ.mean() < 0.001


def exact_y_times_255000(rgb: np.ndarray) -> np.ndarray:
    """255000 · Y in exact integer arithmetic (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return 16 * 255000 + 65481 * r + 128553 * g + 24966 * b


def _colour_plane(b: int) -> np.ndarray:
    r = np.arange(256, dtype=np.uint8)
    rr, gg = np.meshgrid(r, r, indexing="ij")
    return np.stack([rr, gg, np.full_like(rr, b)], axis=-1)


def test_rounded_y_is_exact_half_up_rounding_except_at_ties():
    """Rounded Y equals exact BT.601 Y (integer arithmetic) rounded half-up for every colour that is not an exact .5 tie."""
    for b in range(0, 256, 5):  # every 5th blue level keeps this fast
        rgb = _colour_plane(b)
        exact = exact_y_times_255000(rgb)
        half_up = (exact + 127500) // 255000
        bad = rgb_to_y(rgb) != half_up
        assert np.all(exact[bad] % 255000 == 127500), f"a non-tie colour rounds wrongly (blue={b})"


def _tie_colours() -> np.ndarray:
    ties = []
    for b in range(256):
        rgb = _colour_plane(b)
        ties.append(rgb[exact_y_times_255000(rgb) % 255000 == 127500])
    return np.concatenate(ties)


def test_rounded_y_ties_round_half_up():
    ties = _tie_colours()
    assert len(ties) == 194
    img = ties.reshape(-1, 1, 3)
    half_up = (exact_y_times_255000(img) + 127500) // 255000
    assert np.array_equal(rgb_to_y(img), half_up)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("round_y", [False, True])
def test_psnr_and_ssim_match_skimage(name, round_y):
    a, b = PAIRS[name]
    ya, yb = rgb_to_y(a, round_y=round_y), rgb_to_y(b, round_y=round_y)
    assert psnr(ya, yb) == pytest.approx(sk_psnr(yb, ya), abs=1e-6)
    assert ssim(ya, yb) == pytest.approx(sk_ssim(ya, yb), abs=1e-4)


@pytest.mark.parametrize("name", ["scene-rain", "random-noise"])
def test_psnr_y_ssim_y_are_the_y_channel_metrics(name):
    a, b = PAIRS[name]
    ya, yb = np.round(sk_y(a)), np.round(sk_y(b))
    assert psnr_y(a, b) == pytest.approx(sk_psnr(yb, ya), abs=1e-6)
    assert ssim_y(a, b) == pytest.approx(sk_ssim(ya, yb), abs=1e-4)


def test_metrics_discriminate():
    """Sanity of ordering: a mild degradation scores better than a strong one (a test that any constant fails)."""
    scene = PAIRS["scene-rain"][1]
    mild = cv2.GaussianBlur(scene, (3, 3), 0.8)
    strong = cv2.GaussianBlur(scene, (9, 9), 3.0)
    assert psnr_y(mild, scene) > psnr_y(strong, scene) > 0
    assert 1 > ssim_y(mild, scene) > ssim_y(strong, scene)


def test_identical_images():
    img = PAIRS["scene-rain"][1]
    assert psnr_y(img, img) == math.inf
    assert ssim_y(img, img) == 1.0
    assert psnr(img[..., 0], img[..., 0]) == math.inf


def test_known_mse_gives_known_psnr():
    a = np.full((20, 30), 100.0)
    b = a + 5.0  # MSE 25
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)
    assert psnr(a, b) == pytest.approx(34.15140352195873, abs=1e-9)
    c = a.copy()
    c[:10] += 10.0  # half the pixels off by 10: MSE 50
    assert psnr(a, c) == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-12)
    assert psnr(a, b, peak=1.0) == pytest.approx(10 * math.log10(1 / 25), abs=1e-12)


@pytest.mark.parametrize(
    "rgb, exact, rounded",
    [
        ((255, 255, 255), 235.0, 235),
        ((0, 0, 0), 16.0, 16),
        ((255, 0, 0), 81.481, 81),
        ((0, 255, 0), 144.553, 145),
        ((0, 0, 255), 40.966, 41),
        ((128, 128, 128), 16 + 219 * 128 / 255, 126),
    ],
)
def test_y_of_pure_colours_is_bt601(rgb, exact, rounded):
    img = np.array(rgb, dtype=np.uint8).reshape(1, 1, 3)
    assert rgb_to_y(img, round_y=False)[0, 0] == pytest.approx(exact, abs=1e-9)
    assert rgb_to_y(img)[0, 0] == rounded


def test_ssim_of_constant_offset_is_hand_computable():
    """Flat images: σ = 0 everywhere, so SSIM = (2μaμb + C1) / (μa² + μb² + C1)."""
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 120.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), abs=1e-9)


def test_errors():
    with pytest.raises(ValueError, match="differ in size"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="11"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))
    with pytest.raises(ValueError, match="single-channel"):
        ssim(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)))
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(np.zeros((5, 5)))
