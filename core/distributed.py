"""Process-group setup for multi-process training launched by `torchrun` or the `deepspeed` launcher, and the
tokenizer's DistributedDataParallel wrapping.

Both launchers set RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; a plain `python` or `t2v` run is a
single process with no group. CPU ranks use gloo, CUDA ranks nccl (the device is set before the group exists).

The tokenizer trains under `torch.nn.parallel.DistributedDataParallel` (`wrap`), not FSDP or DeepSpeed ZeRO: its
models are convolution stacks of 5–270M parameters (the presets tiny to L; its discriminator 0.5–2M), whose weights,
gradients and Adam state take 16 bytes a parameter, 0.7 GB for S and 4.3 GB for L, replicated on every rank without
strain. What fills a GPU is the activations of 3D convolutions over clips, which sharding does not touch (gradient
checkpointing does). Sharding would add an all-gather of every layer's weights to each forward and backward to
save memory the model does not need; DDP's bucketed gradient all-reduce overlaps the backward and leaves each
rank's optimizer step local. The generator, a transformer whose optimizer state does grow, uses DeepSpeed
(generator/train.py).
"""
from __future__ import annotations

import contextlib
import os
import socket
from typing import ContextManager, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

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


def wrap(module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
    """`module` (on its device already) in DistributedDataParallel when several ranks train, else `module` itself.

    Wrapping copies rank 0's parameters and buffers to every rank. Buffers are not broadcast again at each forward:
    the tokenizer's only changing buffers, an EMA-VQ codebook's, are all-reduced by the quantizer itself.
    `find_unused_parameters` is for a model that leaves some parameters out of some steps' graphs (the decoder
    fine-tune encodes without gradients); it costs a walk of the graph after each forward.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return module
    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False, find_unused_parameters=find_unused_parameters)


def accumulating(module: nn.Module, last: bool) -> ContextManager:
    """The context of one micro-batch's forward and backward: a wrapped module's gradients are all-reduced with the
    `last` micro-batch of a step only (DDP's `no_sync` before it); nothing for an unwrapped module."""
    if last or not isinstance(module, DistributedDataParallel):
        return contextlib.nullcontext()
    return module.no_sync()


def rank_seed(seed: int, rank: int) -> int:
    """A torch seed of its own for each (seed, rank): what ranks draw besides their data (code noise, a VQ codebook's
    restarts) differs between them, and is the same again in a run with the same seed."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place) and return it."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


@contextlib.contextmanager
def launcher_env() -> Iterator[bool]:
    """Keep a launcher's variables (yields True); a plain process gets rank 0 of 1 on a free local port for the
    call (yields False)."""
    if "WORLD_SIZE" in os.environ:
        yield True
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port)}
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield False
    finally:
        for name in added:
            os.environ.pop(name, None)
