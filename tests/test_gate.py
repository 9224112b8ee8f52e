"""The rain gate (derain_edge.gate): a derainer's side effects on dry frames are undone, its rain removal is kept."""
import cv2
import numpy as np
import pytest

from conftest import make_clean
from derain_edge.gate import apply_gate, gate_weights
from derain_edge.metrics import psnr_y
from derain_edge.rain import RainConfig, render_rain


def _side_effects(img: np.ndarray) -> np.ndarray:
    """What a small derainer does to a dry frame: softer texture and a slight colour shift."""
    soft = cv2.GaussianBlur(img, (0, 0), 1.2).astype(np.float32)
    return np.clip(soft * np.float32([0.97, 1.0, 1.03]) + 2, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dry_frame_comes_back_nearly_untouched(seed):
    dry = make_clean(160, 120, seed=seed)
    out = _side_effects(dry)
    gated = apply_gate(dry, out)
    assert psnr_y(gated, dry) > psnr_y(out, dry) + 1.0
    assert gate_weights(dry, out).mean() < 0.2


@pytest.mark.parametrize("preset", ["light", "heavy"])
def test_rain_removal_is_kept(preset):
    clean = make_clean(240, 160, seed=4)
    rainy = np.round(render_rain(clean.astype(np.float32) / 255, np.random.default_rng(1), RainConfig.preset(preset)) * 255).astype(np.uint8)
    perfect = clean  # a derainer that removed exactly the rain
    gated = apply_gate(rainy, perfect)
    assert psnr_y(gated, clean) > psnr_y(rainy, clean) + 0.8 * (min(psnr_y(perfect, clean), 60) - psnr_y(rainy, clean)) or psnr_y(gated, clean) > 40


def test_identity_is_a_fixed_point_and_shapes_are_checked():
    img = make_clean(64, 48, seed=3)
    assert np.array_equal(apply_gate(img, img), img)
    with pytest.raises(ValueError, match="same shape"):
        apply_gate(img, img[:10])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_uniform_brightness_shift_is_not_rain(seed):
    """A model that darkens every frame (ANLCL-lite's G_B does, by ~15 grey levels) must not open the whole-frame gate
    on a dry frame: the shift is removed before the rain coverage is measured."""
    dry = make_clean(160, 120, seed=seed)
    out = np.clip(_side_effects(dry).astype(np.int16) - 15, 0, 255).astype(np.uint8)
    assert psnr_y(out, dry) < 27
    assert gate_weights(dry, out).mean() < 0.2
    assert psnr_y(apply_gate(dry, out), dry) > psnr_y(out, dry) + 6.0
