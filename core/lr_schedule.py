"""The learning-rate schedule both trainers use: linear warmup, then a cosine decay to a floor (plain numbers in)."""
from __future__ import annotations

import math


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The factor on the base learning rate at `step` (0-based): (step + 1) / warmup_steps during the warmup, then a
    cosine from 1 down to `min_ratio` at `total_steps`, and `min_ratio` after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
