"""What every bench script shares: `--device` / `--dtype` (as the CLI's), and its result written as JSON (the folder
made as needed) and where it went."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--device and --dtype, both "auto" by default: CUDA with bf16 when a GPU is visible, else CPU with fp32."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16")


def device_of(args: argparse.Namespace):
    """(torch.device, torch.dtype) of the parsed --device / --dtype (a ValueError names a bad one)."""
    from t2v.core.precision import resolve

    return resolve(args.device, args.dtype)


def synchronize(device) -> None:
    """Wait for the device's queued work (a timer around CUDA work must), nothing on the CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def write_report(result: dict[str, Any], out: str | Path) -> Path:
    """Write `result` as indented JSON to `out` and say so on stdout."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return out
