"""Background-disjoint splits (derain_edge.splits, scripts/rain100h_split.py) and the training mix of lpnet.data."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from derain_edge.imageio import write_image
from derain_edge.splits import BackgroundOverlapError, check_disjoint
from lpnet.data import PatchSampler

ROOT = Path(__file__).resolve().parents[1]


def _photo(seed: int, size=(64, 96)) -> np.ndarray:
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    return cv2.resize(blocks, size[::-1], interpolation=cv2.INTER_NEAREST)


def test_a_shared_background_is_refused_even_resized_and_renamed(tmp_path):
    a = _photo(1)
    write_image(tmp_path / "train" / "25.png", a)
    write_image(tmp_path / "train" / "other.png", _photo(2))
    # the same background one pixel bigger, under another name (Rain100L 481×321 vs Rain100H 480×320)
    write_image(tmp_path / "test" / "006.png", cv2.resize(a, (97, 65), interpolation=cv2.INTER_LINEAR))
    write_image(tmp_path / "test" / "fresh.png", _photo(3))
    with pytest.raises(BackgroundOverlapError, match=r"1 test image.*006\.png ~ .*25\.png"):
        check_disjoint([tmp_path / "train"], [tmp_path / "test"])
    (tmp_path / "test" / "006.png").unlink()
    check_disjoint([tmp_path / "train"], [tmp_path / "test"])  # distinct photos pass


def test_the_shipped_split_is_background_disjoint(shared_data, tmp_path):
    """The real split of ../shared/data: light pairs follow their heavy twins; the script checks disjointness itself."""
    if not (shared_data / "rain100l-dev").is_dir():
        pytest.skip("rain100l-dev not in the shared data")
    r = subprocess.run([sys.executable, str(ROOT / "scripts/rain100h_split.py"), "--data", str(shared_data), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "heavy: test 12, val 6, train 32" in r.stdout and "light: test 12, val 6, train 35" in r.stdout
    # Rain100H holds backgrounds twice (6 = 25, 7 = 36, 9 = 58, 10 = 69): twins must land in the same part
    train = {p.stem for p in (tmp_path / "heavy/train/clean").iterdir()}
    assert {"6", "25", "7", "36", "9", "58", "10", "69"} <= train
    # and the old name-based split (test 6, train 25) is exactly what the guard refuses
    with pytest.raises(BackgroundOverlapError):
        check_disjoint([tmp_path / "heavy/train/clean"], [shared_data / "rain100h-dev/clean"])


def _sampler(**kw):
    rng = np.random.default_rng(0)
    clean = [rng.integers(0, 256, (160, 160, 3), dtype=np.uint8) for _ in range(2)]
    pairs = [(np.clip(c.astype(int) + 60, 0, 255).astype(np.uint8), c) for c in clean]
    return PatchSampler(pairs, clean, patch=32, batch_size=400, seed=3, **kw)


def test_the_mix_draws_dry_rendered_and_real_crops_in_the_asked_shares():
    s = _sampler(synthetic_fraction=0.3, dry_fraction=0.25, presets=("moderate", "heavy"))
    assert s.mix == {"real": 0.45, "rendered": 0.3, "dry": 0.25, "presets": ["moderate", "heavy"]}
    rainy, clean = s.batch(0)
    diff = (rainy - clean).abs().flatten(1).amax(1)
    dry = (diff == 0).float().mean().item()
    real = ((rainy - clean).flatten(1).mean(1) > 0.2).float().mean().item()  # the +60 grey-level "rain" of the pairs
    assert abs(dry - 0.25) < 0.07 and abs(real - 0.45) < 0.08
    assert torch_equal(s.batch(5), s.batch(5))  # a pure function of the step: resumes see the same batches


def torch_equal(a, b):
    return all(bool((x == y).all()) for x, y in zip(a, b))


@pytest.mark.parametrize("kw, msg", [({"synthetic_fraction": 0.8, "dry_fraction": 0.3}, "add up to at most 1"),
                                     ({"presets": ("monsoon",)}, "unknown rain preset 'monsoon'")])
def test_bad_mix_settings_are_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _sampler(**kw)
