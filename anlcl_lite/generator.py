"""The light generator of ANLCL-lite: O = B + R with an image branch G_B and a rain branch G_R.

The released NLCL generator (Ye et al., CVPR'22, Sec. 3) is a residual net without downsampling: conv 3→32,
16 residual blocks (conv-IN-ReLU-conv-IN), conv → 3 (316k parameters). Ours keeps that shape but is configurable
(width, blocks, optional 2× down/up) and small: the default G_B (width 24, 4 blocks) has 43,371 parameters.

Decomposition (NLCL eq. 1): O = B + R. G_B predicts the rain residual and returns B = O − G_B'(O) (zero-initialised
tail: an untrained G_B is the identity, like LPNet); G_R returns R directly (an untrained G_R returns 0).

Export: only ops every converter takes (3×3 Conv with zero padding, ReLU, InstanceNorm, dense ConvTranspose 2×2
stride 2 without padding — see docs/toolchain.md) — `norm="none"` removes InstanceNorm for int8 targets.
Same I/O contract as LPNet: N×3×H×W RGB float in [0, 1], any H×W (odd sizes are edge-padded to even before the
optional 2× down/up and cropped back); in eval mode B is clipped to [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "none")
ROLES = ("image", "rain")


@dataclass(frozen=True)
class GeneratorConfig:
    width: int = 24
    blocks: int = 4
    down: bool = False  # 2× stride-2 conv down / 2×2 ConvTranspose up around the residual blocks
    norm: str = "instance"

    def __post_init__(self):
        if self.width < 1 or self.blocks < 0:
            raise ValueError(f"generator width must be ≥ 1 and blocks ≥ 0, got width={self.width}, blocks={self.blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose from {', '.join(NORMS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.Identity()


class ResBlock(nn.Module):
    """conv3×3 – IN – ReLU – conv3×3 – IN, plus the identity (the NLCL/CycleGAN residual block)."""

    def __init__(self, width: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), _norm(norm, width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), _norm(norm, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LightGenerator(nn.Module):
    """G_B (role "image": returns B = O − rain estimate) or G_R (role "rain": returns R).

    `encode(x)` exposes the intermediate features (head and each residual block) that the location contrast
    (PatchNCE between O and B) uses as the generator's encoder.
    """

    def __init__(self, config: GeneratorConfig | None = None, role: str = "image"):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"unknown generator role {role!r}; choose from {', '.join(ROLES)}")
        self.config = config = config or GeneratorConfig()
        self.role = role
        w = config.width
        self.head = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(inplace=True)) if config.down else None
        self.blocks = nn.ModuleList(ResBlock(w, config.norm) for _ in range(config.blocks))
        self.up = nn.Sequential(nn.ConvTranspose2d(w, w, 2, stride=2), nn.ReLU(inplace=True)) if config.down else None
        self.tail = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # initialisation only: untrained G_B = identity, untrained G_R = 0
        nn.init.zeros_(self.tail.bias)

    @property
    def feature_channels(self) -> list[int]:
        return [self.config.width] * (1 + len(self.blocks))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"the generator expects an N×3×H×W RGB tensor, got shape {tuple(x.shape)}")
        smallest = 4 if self.config.down else 2
        if self.config.norm == "instance" and x.shape[2] * x.shape[3] < smallest:
            raise ValueError(f"image of {x.shape[3]}×{x.shape[2]} px is too small for instance normalisation")

    def _trunk(self, x: torch.Tensor, collect: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, w = x.shape[2], x.shape[3]
        if self.config.down:  # unconditional (no data-dependent branch) so exported graphs keep dynamic H×W
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        feats = []
        f0 = self.head(x)
        f = self.down(f0) if self.down is not None else f0
        if collect:
            feats.append(f0)
        for block in self.blocks:
            f = block(f)
            if collect:
                feats.append(f)
        if self.up is not None:
            f = self.up(f) + f0
        return self.tail(f)[:, :, :h, :w], feats

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features after the head and after each residual block (PatchNCE encoder, CUT-style)."""
        self._check(x)
        return self._trunk(x, collect=True)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        y, _ = self._trunk(x, collect=False)
        if self.role == "rain":
            return y
        b = x - y
        return b if self.training else b.clamp(0.0, 1.0)


class Decomposer(nn.Module):
    """Both branches: forward(O) → (B, R); the self-consistency term asks B + R = O."""

    def __init__(self, image: GeneratorConfig | None = None, rain: GeneratorConfig | None = None):
        super().__init__()
        self.g_b = LightGenerator(image, "image")
        self.g_r = LightGenerator(rain or image, "rain")

    def forward(self, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.g_b(o), self.g_r(o)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
