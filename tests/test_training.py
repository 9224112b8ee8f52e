"""Training state: atomic, pickle-free checkpoints that resume exactly, even after SIGKILL."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from derain_edge.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lpnet import LPNet, load_pretrained, load_weights, save_weights
from lpnet.data import PatchSampler
from lpnet.weights import shipped_weights_path

ROOT = Path(__file__).resolve().parents[1]


def _write_pairs(root: Path, n: int = 3, size=(48, 56)) -> Path:
    rng = np.random.default_rng(1)
    for kind in ("rainy", "clean"):
        (root / kind).mkdir(parents=True)
    for i in range(n):
        clean = cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8), (7, 7), 2)
        rain = (rng.random(size) > 0.97).astype(np.uint8) * 120
        rainy = np.clip(clean.astype(int) + rain[..., None], 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "clean" / f"{i}.png"), clean)
        cv2.imwrite(str(root / "rainy" / f"{i}.png"), rainy)
    return root


def _train_cmd(data: Path, out: Path, iters: int) -> list[str]:
    return [sys.executable, "-m", "derain_edge.commands.train", "lpnet", "--pairs", str(data), "--val", str(data), "--out", str(out),
            "--iters", str(iters), "--batch", "2", "--patch", "32", "--ckpt-every", "3", "--val-every", "6"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _checkpoint_step(path: Path) -> int:
    try:
        with safe_open(str(path), framework="pt") as f:
            import json

            return json.loads(f.metadata()["meta"])["step"]
    except Exception:
        return -1


def test_resume_after_sigkill_loses_nothing(tmp_path):
    data = _write_pairs(tmp_path / "data")
    iters = 30
    subprocess.run(_train_cmd(data, tmp_path / "straight", iters), env=_env(), check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(data, killed, iters), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _checkpoint_step(killed / "last.safetensors") < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed; make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_at_kill = _checkpoint_step(killed / "last.safetensors")
    assert 6 <= step_at_kill < iters

    resumed = subprocess.run(_train_cmd(data, killed, iters), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming" in resumed.stderr and f"iteration {step_at_kill}" in resumed.stderr
    assert f"LPNet: {iters}/{iters} it done in" in resumed.stderr and "\r" not in resumed.stderr  # plain lines in a log

    a = load_file(str(tmp_path / "straight" / "final.safetensors"))
    b = load_file(str(killed / "final.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert (killed / "curve.png").stat().st_size > 1000


def test_resume_refuses_different_settings(tmp_path):
    data = _write_pairs(tmp_path / "data")
    out = tmp_path / "run"
    subprocess.run(_train_cmd(data, out, 3), env=_env(), check=True, capture_output=True, timeout=300)
    cmd = _train_cmd(data, out, 6) + ["--seed", "7"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "different settings" in r.stderr and "seed" in r.stderr


def test_batches_are_a_function_of_seed_and_step():
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))]
    s1, s2 = PatchSampler(pairs, [], patch=16, batch_size=4, seed=3), PatchSampler(pairs, [], patch=16, batch_size=4, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(s1.batch(5), s2.batch(5)))
    assert not torch.equal(s1.batch(5)[0], s1.batch(6)[0])
    rainy, clean = s1.batch(0)
    assert rainy.shape == clean.shape == (4, 3, 16, 16) and rainy.dtype == torch.float32


def test_checkpoint_round_trip_restores_optimizer_state(tmp_path):
    model = LPNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model.forward_pyramid(torch.rand(1, 3, 16, 16))[-1].mean().backward()
        opt.step()
    save_checkpoint(tmp_path / "c.safetensors", {"model": model}, {"adam": opt}, {"step": 2})
    model2, opt2 = LPNet(), None
    opt2 = torch.optim.Adam(model2.parameters(), lr=5.0)
    meta = load_checkpoint(tmp_path / "c.safetensors", {"model": model2}, {"adam": opt2})
    assert meta == {"step": 2}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-3
    for i in s1["state"]:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(s1["state"][i][k]), torch.as_tensor(s2["state"][i][k]))


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    model = LPNet()
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path / "c.safetensors", {"model": model}, {"adam": opt}, {"step": 0})
    data = path.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "half.safetensors", {"model": LPNet()}, {})
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a derain-edge training checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors", {"model": LPNet()}, {})


def test_weights_round_trip_and_bad_files(tmp_path):
    model = LPNet()
    torch.nn.init.normal_(model.subnets[0].tail.weight)
    save_weights(model, tmp_path / "w.safetensors", {"note": "x"})
    other = LPNet()
    assert load_weights(other, tmp_path / "w.safetensors") == {"note": "x"}
    assert torch.equal(other.subnets[0].tail.weight, model.subnets[0].tail.weight)
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temporary file"

    with pytest.raises(FileNotFoundError):
        load_weights(LPNet(), tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_weights(LPNet(), tmp_path / "junk.safetensors")
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="does not hold LPNet weights"):
        load_weights(LPNet(), tmp_path / "foreign.safetensors")
    bad = {k: v for k, v in model.state_dict().items()}
    bad["subnets.0.head.weight"] = torch.zeros(5, 3, 3, 3)
    save_file(bad, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match="has shape"):
        load_weights(LPNet(), tmp_path / "shape.safetensors")


def test_shipped_weights_load_in_eval_mode():
    path = shipped_weights_path()
    assert path.is_file(), f"shipped weights missing: {path}"
    assert path.stat().st_size < 64_000
    model = load_pretrained()
    assert not model.training
    x = torch.rand(1, 3, 33, 47)
    y = model(x)
    assert y.shape == x.shape and not torch.allclose(y, x, atol=1e-3), "shipped weights look untrained"


def test_synthetic_batches_render_rain_over_clean_photos():
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 200, (160, 200, 3), dtype=np.uint8), (9, 9), 3)
    sampler = PatchSampler([], [photo], patch=32, batch_size=6, seed=1)
    rainy, clean = sampler.batch(0)
    assert rainy.shape == clean.shape == (6, 3, 32, 32)
    assert torch.equal(rainy, PatchSampler([], [photo], patch=32, batch_size=6, seed=1).batch(0)[0])
    diff = rainy - clean
    assert diff.mean() > 0.02, "no rain was rendered"
    assert diff.min() > -0.01, "additive rain should not darken the image"


def test_a_torch_pickle_given_as_lpnet_weights_says_what_it_is(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(LPNet().state_dict(), path)
    with pytest.raises(ValueError) as e:
        load_weights(LPNet(), path)
    msg = str(e.value)
    assert "corrupt" not in msg and "weights_io" in msg  # names the safe conversion command
