"""The peer objectives on the light generator: DCD-GAN (dual contrast, colour cycle, frequency loss) and CCLGAN
(intra-cycle contrast in a frozen semantic encoder's space, inter-cycle contrast with the discriminators, location
contrast). Every term by hand on a toy case, then the objectives assembled and trained for a few steps."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from anlcl_lite.losses.cycle import colour_cycle, frequency_loss
from anlcl_lite.losses.dual_contrast import dual_patch_nce
from anlcl_lite.losses.ratio_contrast import contrast_ratio
from anlcl_lite.objective import LossConfig
from anlcl_lite.sampling import StepRandom
from anlcl_lite.semantic import SemanticEncoderError, load_semantic_encoder
from anlcl_lite.train import AnlclTrainConfig, Models, train
from conftest import add_rain, make_clean, write_png

TINY = {"n_query": 16, "n_neg": 32, "loc_patches": 64, "loc_neg": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyEncoder(torch.nn.Module):
    """Same interface as a traced CLIP image tower: N×3×S×S in [0, 1] → N×D."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, 2, 1),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("encoder") / "tiny_encoder.pt"
    torch.jit.script(TinyEncoder()).save(str(path))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("peer_data")
    for i in range(4):
        write_png(root / "clean" / f"{i}.png", make_clean(96, 96, i))
        write_png(root / "rainy" / f"{i}.png", add_rain(make_clean(96, 96, 10 + i), i))
    return root


# --- terms by hand -------------------------------------------------------------------------------------------------

def test_dual_patch_nce_internal_and_external_negatives_by_hand():
    q = F.normalize(torch.randn(2, 3, 4), dim=-1)
    k = F.normalize(torch.randn(2, 3, 4), dim=-1)
    tau = 0.5
    internal = dual_patch_nce(q, k, tau, external=False)
    expected = sum(-torch.log_softmax(q[n] @ k[n].t() / tau, dim=1)[i, i] for n in range(2) for i in range(3)) / 6
    assert float(internal) == pytest.approx(float(expected), rel=1e-5)
    external = dual_patch_nce(q, k, tau, external=True)
    allk = k.reshape(6, 4)
    expected = sum(-torch.log_softmax(q[n, i] @ allk.t() / tau, dim=0)[n * 3 + i] for n in range(2) for i in range(3)) / 6
    assert float(external) == pytest.approx(float(expected), rel=1e-5)
    assert float(external) > float(internal)  # more negatives, never an easier task
    # one image: internal and external coincide (CUT's PatchNCE)
    assert float(dual_patch_nce(q[:1], k[:1], tau, True)) == pytest.approx(float(dual_patch_nce(q[:1], k[:1], tau, False)))


def test_colour_cycle_sums_each_channels_error():
    x = torch.rand(2, 3, 5, 7)
    y = x.clone()
    y[:, 0] += 0.1  # red off by 0.1
    y[:, 2] -= 0.3  # blue off by 0.3
    assert float(colour_cycle(y, x)) == pytest.approx(0.4, abs=1e-6)


def test_frequency_loss_of_a_constant_offset_is_all_in_the_dc_term():
    x = torch.rand(1, 3, 4, 8)
    loss = frequency_loss(x + 0.25, x)
    # orthonormal FFT of a constant δ over H×W: δ·√(HW) at DC, zero elsewhere; mean over 3·4·8 coefficients
    assert float(loss) == pytest.approx(0.25 * (4 * 8) ** 0.5 / (4 * 8), rel=1e-5)
    assert float(frequency_loss(x, x)) == 0.0
    # not the spatial MSE in disguise (which a squared spectrum distance would be, by Parseval)
    noise = torch.randn_like(x) * 0.1
    assert float(frequency_loss(x + noise, x)) != pytest.approx(float((noise ** 2).mean()), rel=0.05)


def test_contrast_ratio_by_hand_and_only_the_anchor_gets_gradients():
    a = torch.zeros(4, requires_grad=True)
    p, n1, n2 = torch.full((4,), 0.5, requires_grad=True), torch.full((4,), 1.0), torch.full((4,), 2.0)
    loss = contrast_ratio(a, [(p, 1.0)], [(n1, 1.0), (n2, 0.1)])
    assert float(loss.detach()) == pytest.approx(0.5 / (0.5 + 1.0 + 0.1 * 2.0), rel=1e-5)
    loss.backward()
    assert a.grad is not None and p.grad is None
    # an anchor equal to its negative (an untrained, identity generator) stays bounded instead of exploding
    same = contrast_ratio(n1.clone().requires_grad_(), [(p, 1.0)], [(n1, 1.0)])
    assert float(same.detach()) == pytest.approx(1.0, abs=1e-5)


# --- the semantic encoder ------------------------------------------------------------------------------------------

def test_semantic_encoder_loads_frozen_and_passes_gradients_to_its_input(encoder_file):
    enc = load_semantic_encoder(encoder_file, size=32)
    assert all(not p.requires_grad for p in enc.parameters())
    x = torch.rand(2, 3, 48, 40, requires_grad=True)  # any size: resized to 32×32
    e = enc(x)
    assert e.shape == (2, 16)
    e.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    enc.train()
    assert not enc.training  # stays in eval mode


def test_semantic_encoder_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(FileNotFoundError, match="semantic encoder not found"):
        load_semantic_encoder(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a TorchScript archive")
    with pytest.raises(SemanticEncoderError, match="not a TorchScript module"):
        load_semantic_encoder(junk)

    class Scalar(torch.nn.Module):
        def forward(self, x):
            return x.mean()

    wrong = tmp_path / "scalar.pt"
    torch.jit.script(Scalar()).save(str(wrong))
    with pytest.raises(SemanticEncoderError, match="N×D tensor"):
        load_semantic_encoder(wrong, size=16)


# --- the objectives assembled --------------------------------------------------------------------------------------

def _models(objective: str, **loss) -> Models:
    cfg = AnlclTrainConfig(out="unused", width=8, blocks=2, ndf=8, loss={**TINY, "objective": objective, **loss})
    torch.manual_seed(0)
    return Models(cfg)


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("objective", ["dcdgan", "cclgan"])
def test_translation_objective_terms_weights_and_gradients(objective, encoder_file):
    extra = {"semantic_encoder": str(encoder_file), "semantic_size": 32} if objective == "cclgan" else {}
    models = _models(objective, **extra)
    o, c = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    total, terms, pictures, cache = models.objective.step_loss(models, o, c, StepRandom(0, 0, 2))
    cfg = models.loss_cfg
    expected = set(cfg.terms)
    assert set(terms) == expected
    weight = {"adv": 1.0, "nce": cfg.w_nce, "location": cfg.w_nce, "idt": cfg.w_idt, "cyc": cfg.w_cyc,
              "freq": cfg.w_freq, "intra": cfg.w_intra, "inter": cfg.w_inter}
    assert float(total.detach()) == pytest.approx(float(sum(weight[k] * v.detach() for k, v in terms.items())), rel=1e-5)
    total.backward()
    assert _grad_norm(models.g_b) > 0 and _grad_norm(models.g_o) > 0
    assert _grad_norm(models.objective) > 0  # the contrast heads are trained
    assert {id(p) for p in models.objective.parameters()} <= {id(p) for p in models.generator_parameters()}
    assert not {id(p) for p in models.d.parameters()} & {id(p) for p in models.generator_parameters()}
    assert list(pictures)[:2] == ["O", "B = G_B(O)"]
    d_total, d_terms = models.objective.disc_loss(models, o, c, cache)
    assert set(d_terms) == {"d", "d_o"} and float(d_total.detach()) == pytest.approx(float(d_terms["d"] + d_terms["d_o"]))


def test_switching_terms_off_removes_them():
    models = _models("dcdgan", cyc=False, freq=False, nce=False)
    _, terms, _, _ = models.objective.step_loss(models, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), StepRandom(0, 0, 1))
    assert set(terms) == {"adv", "idt"}
    assert models.objective.generator_parameters() == []
    models = _models("cclgan", intra=False)  # no encoder needed without the intra-cycle contrast
    _, terms, _, _ = models.objective.step_loss(models, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), StepRandom(0, 0, 1))
    assert set(terms) == {"adv", "location", "idt", "inter"}


def test_cclgan_keeps_the_semantic_encoder_out_of_checkpoints(encoder_file):
    models = _models("cclgan", semantic_encoder=str(encoder_file), semantic_size=32)
    assert models.objective.semantic is not None
    assert not any("semantic" in k or k.startswith("objective._") for k in models.state_dict())
    models.to(torch.float64)  # moves follow the model (the same path .to("cuda") takes)
    assert next(models.objective.semantic.parameters()).dtype == torch.float64


@pytest.mark.parametrize("objective", ["dcdgan", "cclgan"])
def test_tiny_run_decreases_the_objective_and_resumes_exactly(objective, data, encoder_file, tmp_path):
    extra = {"semantic_encoder": str(encoder_file), "semantic_size": 32} if objective == "cclgan" else {}

    def cfg(out):
        return AnlclTrainConfig(out=str(out), rainy=[str(data / "rainy")], clean=[str(data / "clean")], init_iters=4,
                                iters=26, batch=2, patch=32, ndf=8, width=8, blocks=2, log_every=5, lr=1e-3,
                                loss={**TINY, "objective": objective, **extra})

    rows = train(cfg(tmp_path / "straight"), progress=False)["rows"]
    unsup = [r for r in rows if r["stage"] == 2]
    assert {"d", "d_o"} <= set(unsup[0])
    assert (unsup[-1]["total"] + unsup[-2]["total"]) / 2 < 0.9 * unsup[0]["total"]
    train(cfg(tmp_path / "resumed"), progress=False, stop_after=13)  # interrupted mid-way (stage 2) …
    train(cfg(tmp_path / "resumed"), progress=False)                 # … and resumed from its checkpoint
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "last.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("models.g_o.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "straight" / "final.safetensors").is_file()
