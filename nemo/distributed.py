"""Data-parallel training under `torchrun` (DistributedDataParallel; gloo on CPU, nccl on CUDA).

    torchrun --nproc_per_node 2 -m aware3d nemo train --data ... --out ...

Each process trains on its share of every epoch's batches; DDP averages the gradients, and the
mesh bank stays identical on every process because its per-batch sums are all-reduced and every
process pushes the same gathered clutter features. Only rank 0 writes the run folder.
Outside torchrun (no WORLD_SIZE in the environment) everything here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["setup", "world", "rank", "all_reduce_sum", "all_gather_cat", "barrier"]


def setup(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group torchrun describes (once)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank(), world()


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over processes (in place); the tensor itself when not distributed."""
    if world() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's tensor (same shape everywhere), concatenated in rank order along dim 0."""
    if world() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def barrier() -> None:
    if world() > 1:
        dist.barrier()
