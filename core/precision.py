"""Devices and precisions by name: a config's precision ("auto", "fp32", "bf16", "fp16") → the dtype a run
computes in; a user's `--device` / `--dtype` → a checked torch device and dtype. "auto" is CUDA when there is one,
and bf16 on a CUDA device (its matmuls run at full rate there), fp32 elsewhere."""
from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float": "fp32"}


def compute_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype of `precision` (or its torch name, e.g. bfloat16) on `device`; an unknown name is a ValueError
    listing the known ones."""
    precision = ALIASES.get(precision, precision)
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}: choose auto, {', '.join(DTYPES)} "
                         f"(or {', '.join(ALIASES)})")
    return DTYPES[precision]


def resolve_device(name: str | None = None) -> torch.device:
    """`name` ("auto"/None: CUDA when available, else CPU; "cpu", "cuda", "cuda:1", "mps") as a device that exists
    here; one that does not is a ValueError saying what is available."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: no CUDA GPU is visible here (torch {torch.__version__}, "
                             f"cuda={torch.version.cuda}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: only {count} CUDA GPU(s) here (cuda:0 … cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "mps"):
        raise ValueError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or auto")
    return device


def resolve(device: str | None = None, dtype: str | None = None) -> tuple[torch.device, torch.dtype]:
    """A user's `--device` and `--dtype` names (None: auto) → (device, dtype): bf16 on CUDA, fp32 elsewhere."""
    where = resolve_device(device)
    return where, compute_dtype(dtype or "auto", where)
