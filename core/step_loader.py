"""Batches of training steps drawn ahead in DataLoader worker processes.

A trainer whose batch at each step is a pure function `draw(step)` (of the seed, rank and step only) reads them
from `step_loader(draw, steps, …)`: item k of the loader is `draw(steps[k])`, computed in one of `num_workers`
processes (0: in the training process) a few steps ahead and handed over in order, in pinned memory for a quick
copy to the GPU when asked. Workers change speed, never data: a resumed run draws exactly the batches the
uninterrupted one would have.
"""
from __future__ import annotations

import multiprocessing
import sys
from typing import Any, Callable

import torch


class StepItems(torch.utils.data.Dataset):
    """Item k: `draw(steps[k])`."""

    def __init__(self, draw: Callable[[int], Any], steps: range) -> None:
        self.draw, self.steps = draw, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int) -> Any:
        return self.draw(self.steps[k])


def worker_context() -> Any:
    """How DataLoader workers start: forked on Linux, where they share the parent's memory-mapped indexes and start
    in milliseconds. Left to the default, a process started by a forkserver (and every process under Python 3.14)
    would start workers through a forkserver, pickling each worker's dataset and importing anew: measured 6 s per
    loader in a forkserver child against 0.1 s forked. Elsewhere (macOS, Windows) the platform's default."""
    return multiprocessing.get_context("fork") if sys.platform == "linux" else None


def _one_thread(worker_id: int) -> None:
    """Each worker computes on one thread: several workers' intra-op threads would fight the trainer's."""
    torch.set_num_threads(1)


def step_loader(draw: Callable[[int], Any], steps: range, num_workers: int = 0, pin_memory: bool = False,
                prefetch: int = 2) -> torch.utils.data.DataLoader:
    """The batches `draw(step)` of `steps`, in order, drawn `prefetch` steps ahead per worker."""
    extra = {"prefetch_factor": prefetch, "worker_init_fn": _one_thread,
             "multiprocessing_context": worker_context()} if num_workers else {}
    return torch.utils.data.DataLoader(StepItems(draw, steps), batch_size=None, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin_memory, **extra)
