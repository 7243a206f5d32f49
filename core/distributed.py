"""Process-group setup for multi-process training launched by `torchrun` or the `deepspeed` launcher.

Both launchers set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; a plain `python` or `t2v` run is a
single process with no group. CPU ranks use gloo, CUDA ranks nccl. Gradients are averaged with one flat
all-reduce per model after backward (no DDP wrapper, so the GAN's extra autograd passes need no special care).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

# Whether `setup` created the current process group: `teardown` destroys only that one, never a group another
# library in this process made and still holds (DeepSpeed caches its one-rank group between training runs).
_owned = False


def setup() -> tuple[int, int, torch.device]:
    """Join the launcher's process group if there is one; returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        global _owned
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _owned = True
    return (dist.get_rank() if dist.is_initialized() else 0), world, device


def teardown(owned_only: bool = True) -> None:
    """Leave the process group: the one `setup` made, or (owned_only=False) whichever is initialised."""
    global _owned
    if dist.is_initialized() and (_owned or not owned_only):
        dist.destroy_process_group()
    _owned = False


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def average_gradients(module: nn.Module) -> None:
    """Average the gradients of `module` over all ranks (a no-op in a single process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset: offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_parameters(module: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if dist.is_initialized():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor
