"""ANLCL-lite probe, diagnostics, identity/dry anchor and the stage-1 data engine (issue 13 §1–2): real, small, fast."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anlcl_lite.data import Crops
from anlcl_lite.generator import GeneratorConfig, LightGenerator
from anlcl_lite.objective import LossConfig, anchor_loss
from anlcl_lite.probe import Probe
from anlcl_lite.train import AnlclTrainConfig, train
from conftest import add_rain, make_clean, write_png
from derain_edge.metrics import psnr_y

ROOT = Path(__file__).resolve().parents[1]
TINY_LOSS = {"n_query": 16, "n_neg": 32, "loc_patches": 64, "loc_neg": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probe_data")
    for i in range(4):
        write_png(root / "clean" / f"{i}.png", make_clean(96, 96, i))
        write_png(root / "rainy" / f"{i}.png", add_rain(make_clean(96, 96, 10 + i), i))
    for i in range(2):  # a labeled probe set (never trained on) and a dry photo set
        clean = make_clean(64, 48, 20 + i)
        write_png(root / "heavy" / "val" / "clean" / f"{i}.png", clean)
        write_png(root / "heavy" / "val" / "rainy" / f"{i}.png", add_rain(clean, 20 + i))
        write_png(root / "dry" / "val" / f"{i}.png", make_clean(64, 48, 30 + i))
    return root


def test_probe_scores_identity_as_the_input_and_rain_in_r(data):
    probe = Probe([data / "heavy" / "val"], [data / "dry" / "val"])
    g_b = LightGenerator(GeneratorConfig(8, 2), "image")  # untrained G_B is the identity (zero last conv)
    g_r = LightGenerator(GeneratorConfig(8, 2), "rain")
    scores = probe(g_b, g_r)
    inputs = probe.inputs()
    assert scores["probe/heavy-val/psnr"] == pytest.approx(inputs["probe/heavy-val/input_psnr"], abs=1e-3)
    assert scores["probe/dry-val/psnr"] == 60.0 and scores["probe/dry-val/ssim"] == pytest.approx(1.0)
    assert "probe/heavy-val/rain_in_r" in scores and "probe/dry-val/rain_in_r" not in scores

    class Oracle(torch.nn.Module):  # R = the true rain exactly → rain_in_r = 1
        def __init__(self, pairs):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.pairs = pairs

        def forward(self, o):
            for rainy, clean in self.pairs:
                if torch.equal(rainy, o):
                    return rainy - clean
            raise AssertionError

    s = probe.sets[0]
    to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255)
    oracle = Oracle([(to(i), to(r)) for i, r in zip(s.inputs, s.refs)])
    assert probe(g_b, oracle)["probe/heavy-val/rain_in_r"] == pytest.approx(1.0, abs=1e-4)
    # a G_B that darkens every frame loses on the dry set, and the probe leaves the modules' modes as they were
    g_b.train()
    with torch.no_grad():
        g_b.tail.bias.fill_(0.1) if hasattr(g_b, "tail") else list(g_b.parameters())[-1].fill_(0.1)
    worse = probe(g_b)
    assert g_b.training and worse["probe/dry-val/psnr"] < 30


def test_anchor_is_zero_for_identity_and_penalises_a_colour_shift():
    g_b = LightGenerator(GeneratorConfig(8, 2), "image")
    g_r = LightGenerator(GeneratorConfig(8, 2), "rain")
    with torch.no_grad():
        list(g_r.parameters())[-1].zero_()  # G_R's last bias: R = 0 exactly when its last conv is zero
        for p in g_r.parameters():
            p.zero_()
    clean = torch.rand(2, 3, 32, 32)
    assert float(anchor_loss(g_b, g_r, clean).detach()) == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        list(g_b.parameters())[-1].fill_(-0.05)  # G_B's residual bias: B = O + 0.05 (before clipping in eval)
    assert float(anchor_loss(g_b, g_r, clean).detach()) == pytest.approx(0.05, abs=2e-3)
    with pytest.raises(ValueError, match="anchor"):
        LossConfig(objective="dcdgan", anchor=1.0)


def test_stage1_engine_mixes_presets_and_dry_pairs_deterministically(data):
    from lpnet.data import load_clean

    clean = load_clean(data / "clean", 32)
    crops = Crops([], clean, 32, seed=3, presets=("drizzle", "heavy"), dry_fraction=0.5)
    rainy, target = crops.synthetic(5, range(16))
    again, _ = crops.synthetic(5, range(16))
    assert torch.equal(rainy, again) and rainy.shape == (16, 3, 32, 32)
    same = [(r - c).abs().max().item() == 0 for r, c in zip(rainy, target)]
    assert 2 <= sum(same) <= 14  # both dry and rendered pairs in a batch
    old = Crops([], clean, 32, seed=3)  # without the options: heavy rain only, as before
    assert old.engine is None


def test_training_with_probe_anchor_and_diagnostics_writes_curve(data, tmp_path):
    cfg = AnlclTrainConfig(out=str(tmp_path / "run"), rainy=[str(data / "rainy")], clean=[str(data / "clean")],
                           init_iters=4, iters=8, batch=2, patch=32, ndf=8, width=8, blocks=2, log_every=2, lr=1e-3,
                           loss={**TINY_LOSS, "anchor": 1.0}, init_presets=["drizzle", "light", "moderate", "heavy"],
                           init_dry=0.25, probe=[str(data / "heavy" / "val")], probe_dry=[str(data / "dry" / "val")],
                           probe_every=4)
    rows = train(cfg, progress=False)["rows"]
    probes = [r for r in rows if "probe" in r]
    assert [r["step"] for r in probes] == [0, 4, 8, 12]
    assert all("probe/heavy-val/psnr" in r and "probe/dry-val/psnr" in r and "probe/heavy-val/input_psnr" in r
               for r in probes)
    unsup = [r for r in rows if r["stage"] == 2 and "probe" not in r]
    assert {"anchor", "d_real", "d_fake", "eta", "r_abs", "r_cover", "adv", "layer"} <= set(unsup[0])
    out = tmp_path / "run"
    assert json.loads((out / "scalars.json").read_text()) == rows
    header = (out / "scalars.csv").read_text().splitlines()[0]
    assert "probe/heavy-val/psnr" in header and "anchor" in header
    import cv2

    assert cv2.imread(str(out / "curve.png")) is not None
    assert len(list((out / "probe").glob("g_b_*.safetensors"))) == 4
    # probe rows are not computed twice when a finished run is called again, and the curve CLI redraws
    again = train(cfg, progress=False)["rows"]
    assert again == rows
    done = subprocess.run([sys.executable, "-m", "anlcl_lite.curve", str(out), str(tmp_path / "c.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr and (tmp_path / "c.png").is_file()
    # python -m anlcl_lite.probe scores a training checkpoint's G_B (and can write it out as weights)
    from anlcl_lite import load_weights
    from anlcl_lite.probe import main as probe_main

    assert probe_main([str(out / "last.safetensors"), "--save-gb", str(tmp_path / "gb.safetensors"),
                       "--probe", str(data / "heavy" / "val")]) == 0
    a, b = load_weights(tmp_path / "gb.safetensors")[0], load_weights(out / "final.safetensors")[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # --save-branches: a small checkpoint that --init-from accepts, with the same G_B
    assert probe_main([str(out / "last.safetensors"), "--save-branches", str(tmp_path / "br.safetensors")]) == 0
    assert (tmp_path / "br.safetensors").stat().st_size < (out / "last.safetensors").stat().st_size / 2
    follow = train(AnlclTrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "follow"), "init_iters": 0, "iters": 1,
                                       "init_from": str(tmp_path / "br.safetensors"), "probe_every": 0}),
                   progress=False, stop_after=0)
    assert follow["step"] == 0


def test_anchor_keeps_dry_frames_closer_than_without(data, tmp_path):
    """Same unsupervised steps with and without the anchor: the anchored G_B changes a clean photo less."""
    from anlcl_lite import load_weights

    def run(name, anchor):
        cfg = AnlclTrainConfig(out=str(tmp_path / name), rainy=[str(data / "rainy")], clean=[str(data / "clean")],
                               init_iters=0, iters=12, batch=2, patch=32, ndf=8, width=8, blocks=2, log_every=4,
                               lr=3e-3, loss={**TINY_LOSS, "anchor": anchor})
        train(cfg, progress=False)
        g_b, _ = load_weights(tmp_path / name / "final.safetensors")
        from derain_edge.imageio import read_image
        from derain_edge.infer import derain_rgb

        imgs = [read_image(p) for p in sorted((data / "dry" / "val").glob("*.png"))]
        return np.mean([psnr_y(derain_rgb(g_b.eval(), im), im) for im in imgs])

    assert run("anchored", 10.0) > run("free", 0.0)


def test_cli_takes_probe_and_recipe_options(data, tmp_path):
    cmd = [sys.executable, "-m", "derain_edge.commands.train", "anlcl", "--clean", str(data / "clean"), "--rainy", str(data / "rainy"),
           "--out", str(tmp_path / "cli"), "--init-iters", "2", "--iters", "2", "--batch", "2", "--patch", "32",
           "--ndf", "8", "--width", "8", "--blocks", "2", "--n-query", "16", "--n-neg", "32", "--threads", "1",
           "--init-presets", "light,heavy", "--init-dry", "0.2", "--anchor", "0.5", "--probe", str(data / "heavy" / "val"),
           "--probe-dry", str(data / "dry" / "val"), "--probe-every", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                                                   "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "cli" / "scalars.json").read_text())
    assert [r["step"] for r in rows if "probe" in r] == [0, 2, 4]


def test_replay_keeps_the_rendered_rain_model_in_stage_2(data, tmp_path):
    """Stage 2 with --replay: the stage-1 loss on rendered pairs is part of the step (logged as `replay`) and after the
    same unsupervised steps it is lower than without replay; translation objectives refuse it."""
    import torch.nn.functional as F

    from anlcl_lite.train import build
    from derain_edge.checkpoint import load_checkpoint

    def run(name, replay):
        cfg = AnlclTrainConfig(out=str(tmp_path / name), rainy=[str(data / "rainy")], clean=[str(data / "clean")],
                               init_iters=6, iters=10, batch=2, patch=32, ndf=8, width=8, blocks=2, log_every=2,
                               lr=3e-3, loss=dict(TINY_LOSS), init_presets=["heavy"], init_dry=0.0, replay=replay)
        rows = train(cfg, progress=False)["rows"]
        models, opts = build(cfg, torch.device("cpu"))
        load_checkpoint(tmp_path / name / "last.safetensors", {"models": models}, opts)
        from lpnet.data import load_clean

        crops = Crops([], load_clean(data / "clean", 32), 32, seed=9, presets=("heavy",))
        o, c = crops.synthetic(0, range(8))
        with torch.no_grad():
            return rows, float(F.l1_loss(models.g_b(o), c) + F.l1_loss(models.g_r(o), o - c))

    rows, with_replay = run("replay", 3.0)
    assert any("replay" in r for r in rows if r["stage"] == 2)
    _, without = run("free", 0.0)
    assert with_replay < without
    with pytest.raises(ValueError, match="replay"):
        train(AnlclTrainConfig(out=str(tmp_path / "dcd"), rainy=[str(data / "rainy")], clean=[str(data / "clean")],
                               init_iters=0, iters=1, batch=2, patch=32, ndf=8, width=8, blocks=2,
                               loss={**TINY_LOSS, "objective": "dcdgan"}, replay=1.0), progress=False)
