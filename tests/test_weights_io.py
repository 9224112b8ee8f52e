"""A torch pickle given as weights is refused with what it is and the one command that converts it safely."""
from __future__ import annotations

import pytest
import torch

from derain_edge.weights_io import foreign_weights_message, main, sniff


def test_torch_pickle_is_named_with_the_conversion_command(tmp_path):
    import anlcl_lite.weights as aw
    from anlcl_lite.generator import LightGenerator

    pt = tmp_path / "g.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, pt)
    msg = foreign_weights_message(pt)
    assert "PyTorch pickle" in msg and "python -m derain_edge.weights_io" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="PyTorch pickle checkpoint .* convert it once with: python -m derain_edge"):
        aw.read_weights(pt)
    assert LightGenerator  # the generator module imports


def test_other_foreign_files(tmp_path):
    import numpy as np

    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "e.safetensors").write_bytes(b"")
    assert "NumPy" in sniff(tmp_path / "a.npy")
    assert "empty" in foreign_weights_message(tmp_path / "e.safetensors")


def test_convert_round_trip(tmp_path, capsys):
    import lpnet

    model = lpnet.LPNet()
    torch.nn.init.normal_(model.subnets[0].tail.weight)
    torch.save({"model": model.state_dict(), "step": 3}, tmp_path / "m.pth")
    assert main([str(tmp_path / "m.pth"), str(tmp_path / "m.safetensors")]) == 0
    back = lpnet.load_pretrained(tmp_path / "m.safetensors")
    assert torch.equal(back.subnets[0].tail.weight, model.subnets[0].tail.weight)


def test_convert_refuses_code_running_pickles(tmp_path, capsys):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    assert main([str(tmp_path / "evil.pt"), str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr()
    assert "pwned" not in err.out and "refused" in err.err and not (tmp_path / "x.safetensors").exists()
