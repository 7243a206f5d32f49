"""Batches of training steps drawn ahead in DataLoader worker processes.

A trainer whose batch at each step is a pure function `draw(step)` (of the seed, rank and step only) reads them
from `step_loader(draw, steps, …)`: item k of the loader is `draw(steps[k])`, computed in one of `num_workers`
processes (0: in the training process) a few steps ahead and handed over in order, in pinned memory for a quick
copy to the GPU when asked. Workers change speed, never data: a resumed run draws exactly the batches the
uninterrupted one would have.
"""
from __future__ import annotations

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


def _one_thread(worker_id: int) -> None:
    """Each worker computes on one thread: several workers' intra-op threads would fight the trainer's."""
    torch.set_num_threads(1)


def step_loader(draw: Callable[[int], Any], steps: range, num_workers: int = 0, pin_memory: bool = False,
                prefetch: int = 2) -> torch.utils.data.DataLoader:
    """The batches `draw(step)` of `steps`, in order, drawn `prefetch` steps ahead per worker."""
    extra = {"prefetch_factor": prefetch, "worker_init_fn": _one_thread} if num_workers else {}
    return torch.utils.data.DataLoader(StepItems(draw, steps), batch_size=None, shuffle=False,
                                       num_workers=num_workers, pin_memory=pin_memory, **extra)
