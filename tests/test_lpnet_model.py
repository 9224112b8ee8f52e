"""LPNet architecture: exact parameter count, any input size, lossless pyramid, converter-friendly upsampler."""
import pytest
import torch
import torch.nn.functional as F

from lpnet import LPNet, count_parameters
from lpnet.losses import lpnet_loss, ssim
from lpnet.pyramid import GaussianDown, GaussianUp, LaplacianPyramid, gaussian_kernel


def test_parameter_count_matches_the_paper():
    assert count_parameters(LPNet()) == 7548


def test_feature_widths_fine_to_coarse():
    model = LPNet()
    # stored coarse → fine
    assert [s.head.out_channels for s in model.subnets] == [1, 2, 4, 8, 16]


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 7), (16, 16), (17, 33), (31, 64), (75, 100), (321, 481)])
def test_output_size_equals_input_size(h, w):
    model = LPNet().eval()
    torch.nn.init.normal_(model.subnets[-1].tail.weight, std=0.1)  # a non-identity network
    y = model(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_4k_frame():
    with torch.inference_mode():
        y = LPNet().eval()(torch.rand(1, 3, 2160, 3840))
    assert y.shape == (1, 3, 2160, 3840)


def test_untrained_model_is_identity():
    """Zero-initialised reconstruction convs + a lossless pyramid: training starts from the rainy input."""
    x = torch.rand(1, 3, 45, 71)
    assert torch.allclose(LPNet().eval()(x), x, atol=1e-6)


@pytest.mark.parametrize("h,w", [(1, 1), (9, 13), (64, 48), (101, 37)])
def test_laplacian_pyramid_is_lossless(h, w):
    pyr = LaplacianPyramid(5)
    x = torch.rand(1, 3, h, w)
    bands = pyr(x)
    assert len(bands) == 5 and bands[-1].shape == x.shape
    recon = bands[0]
    for band in bands[1:]:
        recon = band + pyr.up(recon, band)
    assert torch.allclose(recon, x, atol=1e-6)


def test_upsampler_equals_padded_transposed_conv():
    """The padding-0 transposed conv + crop must equal the padded depthwise transposed conv of the paper."""
    up = GaussianUp(3)
    x, like = torch.rand(1, 3, 12, 9), torch.empty(1, 3, 24, 17)
    k = (4 * gaussian_kernel()).expand(3, 1, 5, 5)
    ref = F.conv_transpose2d(x, k, stride=2, padding=2, output_padding=1, groups=3)[:, :, :24, :17]
    assert torch.allclose(up(x, like), ref, atol=1e-6)


def test_downsampler_is_strided_depthwise_gaussian():
    down = GaussianDown(3)
    x = torch.zeros(1, 3, 9, 9)
    x[0, 1, 4, 4] = 1.0
    y = down(x)
    assert y.shape == (1, 3, 5, 5)
    assert y[0, 0].abs().sum() == 0 and y[0, 2].abs().sum() == 0  # channels do not mix
    assert torch.isclose(y[0, 1, 2, 2], gaussian_kernel()[2, 2])


def test_recursive_block_shares_weights():
    model = LPNet()
    for subnet in model.subnets:
        convs = [m for m in subnet.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 5  # head, 3 shared block convs, tail: 5 recursions reuse the same block


def test_eval_clips_and_training_does_not():
    model = LPNet()
    torch.nn.init.constant_(model.subnets[-1].tail.bias, 2.0)
    x = torch.rand(1, 3, 32, 32)
    assert model.eval()(x).max() <= 1.0
    assert model.train()(x).max() > 1.0


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="N×3×H×W"):
        LPNet()(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="N×3×H×W"):
        LPNet()(torch.rand(3, 8, 8))


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    x = torch.rand(2, 3, 40, 40)
    assert torch.isclose(ssim(x, x), torch.tensor(1.0), atol=1e-5)
    assert ssim(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)) < 0.9


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = LPNet()
    clean = torch.rand(4, 3, 40, 40)
    rainy = (clean + (torch.rand_like(clean) > 0.95).float() * 0.5).clamp(0, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = lpnet_loss(model, rainy, clean).item()
    for _ in range(30):
        opt.zero_grad()
        loss = lpnet_loss(model, rainy, clean)
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * first
