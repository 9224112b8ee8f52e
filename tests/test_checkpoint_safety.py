"""Training checkpoints: damage inside the tensor data is detected, the previous good checkpoint is the fallback,
and stale temporary files of killed writes are removed."""
from __future__ import annotations

import os
import time

import pytest
import torch

from derain_edge.checkpoint import (CheckpointError, CheckpointFallbackWarning, load_checkpoint, previous_path,
                                    save_checkpoint)
from lpnet import LPNet


def _trained(seed):
    torch.manual_seed(seed)
    model = LPNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad()
    model.forward_pyramid(torch.rand(1, 3, 16, 16))[-1].mean().backward()
    opt.step()
    return model, opt


def _zero_middle(path, n=1000):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid - n // 2: mid + n // 2] = bytes(n)
    path.write_bytes(bytes(data))


def test_zeroed_bytes_are_detected_and_the_previous_checkpoint_is_loaded(tmp_path):
    path = tmp_path / "last.safetensors"
    m1, o1 = _trained(1)
    save_checkpoint(path, {"model": m1}, {"adam": o1}, {"step": 1})
    m2, o2 = _trained(2)
    save_checkpoint(path, {"model": m2}, {"adam": o2}, {"step": 2})
    assert previous_path(path).is_file()
    _zero_middle(path)
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_checkpoint(path, {"model": LPNet()}, {}, fallback=False)
    fresh = LPNet()
    with pytest.warns(CheckpointFallbackWarning, match="previous good checkpoint"):
        meta = load_checkpoint(path, {"model": fresh}, {"adam": torch.optim.Adam(fresh.parameters())})
    assert meta == {"step": 1}
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), fresh.state_dict().values()))
    # the next save must not replace the good .prev with the damaged file
    save_checkpoint(path, {"model": m2}, {"adam": o2}, {"step": 3})
    assert load_checkpoint(previous_path(path), {"model": LPNet()}, {}) == {"step": 1}


def test_damaged_without_a_previous_one_is_a_clear_error(tmp_path):
    path = tmp_path / "last.safetensors"
    m, o = _trained(0)
    save_checkpoint(path, {"model": m}, {"adam": o}, {"step": 1})
    _zero_middle(path)
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(path, {"model": LPNet()}, {})


def test_stale_temporary_files_are_removed_at_the_next_save(tmp_path):
    stale = tmp_path / ".history.json.k3j4.tmp.json"
    stale.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".other.json.zz.tmp.json"  # a write in progress right now is left alone
    fresh.write_text("{")
    m, o = _trained(0)
    save_checkpoint(tmp_path / "last.safetensors", {"model": m}, {"adam": o}, {"step": 0})
    assert not stale.exists() and fresh.exists()
