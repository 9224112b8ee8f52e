"""Data-parallel training under torchrun: each process trains on its share of the global batch and the gradients are
averaged across processes before every optimiser step, exactly what DistributedDataParallel does.

DDP's module wrapper is not used because one step runs G_B three times (generator, then twice as the PatchNCE
encoder) and the discriminator several times (adversarial term, layer-contrast encoder, its own loss); DDP's reducer
supports one forward per backward. One flattened all_reduce per optimiser step keeps the communication the same.
Backends: NCCL on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, global_batch: int) -> range:
        """This process's positions in the global batch."""
        if global_batch % self.size:
            raise ValueError(f"--batch {global_batch} does not split evenly over {self.size} processes")
        n = global_batch // self.size
        return range(self.rank * n, (self.rank + 1) * n)


def setup(device_type: str) -> World:
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1); a plain run is a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Replaces each parameter's gradient by its mean over the processes (missing gradients count as zeros)."""
    if not world.enabled:
        return
    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def gather_batch(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(the global batch of `x`, concatenated in rank order along dim 0; where this process's rows start in it).

    For losses whose samples meet samples of other images (DCD-GAN's external negatives): the gather is
    differentiable, its backward sends every row's gradient back to the process that owns it, so averaged gradients
    equal the single-process ones. Shares are contiguous and in rank order (`World.share`), so the global order is
    the single-process order. Outside a process group it returns (x, 0).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather  # autograd-aware collective

    return torch.cat(all_gather(x.contiguous()), dim=0), dist.get_rank() * x.shape[0]


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()


def cleanup(world: World) -> None:
    if world.enabled and dist.is_initialized():
        dist.destroy_process_group()
