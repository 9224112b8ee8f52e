"""Writes a randomly initialised, frozen CNN image encoder as TorchScript: a stand-in for CLIP in CCLGAN's intra-cycle
contrast when no pretrained encoder is at hand (random convolutional features still separate textures such as rain
streaks from clean surfaces, but carry no semantics; say so next to any number trained with one).

usage: python scripts/make_random_encoder.py OUT.pt [--seed N]
       python scripts/make_random_encoder.py --smoke   (writes to a temp dir, loads it back and encodes one image)
"""
import argparse

import torch
from torch import nn

from derain_edge.files import atomic_path


class RandomEncoder(nn.Module):
    """N×3×S×S RGB in [0, 1] → N×256: four stride-2 conv–ReLU stages (32, 64, 128, 256 channels), global mean."""

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, out, 3, 2, 1), nn.ReLU()]
            c = out
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x * 2.0 - 1.0).mean(dim=(2, 3))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="check the script in seconds: OUT defaults to a temp file")
    args = p.parse_args(argv)
    if args.smoke and args.out is None:
        from derain_edge.smoke import scratch_dir

        args.out = str(scratch_dir() / "random_encoder.pt")
    if args.out is None:
        p.error("the following arguments are required: out")
    torch.manual_seed(args.seed)
    with atomic_path(args.out) as tmp:
        torch.jit.script(RandomEncoder().eval()).save(str(tmp))
    print(f"wrote {args.out}")
    if args.smoke:
        emb = torch.jit.load(args.out)(torch.rand(1, 3, 32, 32))
        assert emb.shape == (1, 256), emb.shape
        print(f"smoke: loaded it back; one 32×32 image → {tuple(emb.shape)}")


if __name__ == "__main__":
    main()
