"""Fixed Gaussian / Laplacian pyramids of LPNet (Fu et al., TNNLS 2019, Sec. III-A).

The kernel is the 5×5 binomial filter outer([1,4,6,4,1]/16) (Burt & Adelson), applied per channel:

    G_{k+1} = downsample(g ∗ G_k)                       (Gaussian pyramid)
    L_k     = G_k − upsample(G_{k+1})                    (Laplacian level, eq. 1)

Zero padding as in the official TensorFlow code ('SAME' convolutions). The two operators are built from ops that
every converter we target accepts (see docs/toolchain.md): downsampling is a strided depthwise convolution;
upsampling is a *groups=1, padding=0* transposed convolution with the diagonal kernel 4·g, followed by a crop to the
finer level's size, which is numerically the same as the padded transposed convolution but converts with onnx2tf and
litert-torch too. Because every level is cropped to the size of the level above, any H×W ≥ 1×1 works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def gaussian_kernel() -> torch.Tensor:
    """The 5×5 kernel g = b bᵀ with b = [1,4,6,4,1]/16 (sums to 1)."""
    return torch.outer(_BINOMIAL, _BINOMIAL)


class GaussianDown(nn.Module):
    """g ∗ x followed by ×2 decimation, as one stride-2 depthwise conv: H×W → ⌈H/2⌉×⌈W/2⌉."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels
        self.register_buffer("weight", gaussian_kernel().expand(channels, 1, 5, 5).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, stride=2, padding=2, groups=self.channels)


class GaussianUp(nn.Module):
    """×2 zero-insertion upsampling and filtering with 4·g, cropped to the size of the finer level.

    ConvTranspose2d(stride=2, padding=0) gives 2H+3 rows; rows [2, 2+H_fine) are exactly what the padded
    transposed convolution (padding=2) would give.
    """

    def __init__(self, channels: int = 3):
        super().__init__()
        eye = torch.eye(channels).reshape(channels, channels, 1, 1)
        self.register_buffer("weight", eye * (4.0 * gaussian_kernel()), persistent=False)

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, stride=2, padding=0)
        return y[:, :, 2 : 2 + like.shape[2], 2 : 2 + like.shape[3]]


class LaplacianPyramid(nn.Module):
    """Splits an image into `levels` bands, returned coarse → fine: [G_4, L_3, L_2, L_1, L_0] for 5 levels."""

    def __init__(self, levels: int = 5, channels: int = 3):
        super().__init__()
        self.levels = levels
        self.down = GaussianDown(channels)
        self.up = GaussianUp(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        bands = []
        current = x
        for _ in range(self.levels - 1):
            low = self.down(current)
            bands.append(current - self.up(low, current))
            current = low
        bands.append(current)
        return bands[::-1]

    def gaussian(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Gaussian pyramid [G_4, …, G_0] (coarse → fine); the training targets of LPNet's loss."""
        levels = [x]
        for _ in range(self.levels - 1):
            levels.append(self.down(levels[-1]))
        return levels[::-1]
