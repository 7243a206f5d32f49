"""Precision: a config's name ("auto", "fp32", "bf16", "fp16") → the dtype a run computes in. "auto" is bf16 on a
CUDA device (its matmuls run at full rate there) and fp32 elsewhere."""
from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def compute_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype of `precision` on `device`; an unknown name is a ValueError listing the known ones."""
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}: choose auto, {', '.join(DTYPES)}")
    return DTYPES[precision]

