"""Resumable training state: numbered checkpoint directories under `checkpoints/`, a `latest` pointer, RNG states,
and the exported weights (`model.safetensors` of the run directory).

The save sequence of both trainers, each step durable before the next:
1. the step's metric and evaluation lines are in `metrics.jsonl` (flushed and synced; see runlog.py);
2. the checkpoint directory `checkpoints/step_N/` is written under a temporary name and renamed into place;
3. the weights are exported to `model.safetensors` (atomically, their step in the file's metadata);
4. samples, if any, are written;
5. `checkpoints/latest` moves to `step_N`: the last thing that changes, so whatever `latest` names is complete;
6. checkpoints beyond the newest `keep` (by step number) are removed.
A kill anywhere leaves `latest` on the previous checkpoint, whose resume redoes steps 1–6. State files are
safetensors + JSON (state_io.py): no pickle on any load path.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from t2v.core.atomic import atomic_directory, atomic_file, atomic_write_text
from t2v.core.state_io import load_state, save_state, state_files

WEIGHTS_FILE = "model.safetensors"
_STEP_NAME = re.compile(r"^step_(\d+)$")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def checkpoint_steps(run_dir: Path) -> dict[int, Path]:
    """The checkpoint directories of a run by step number."""
    root = Path(run_dir) / "checkpoints"
    found = {}
    for path in root.iterdir() if root.is_dir() else []:
        if (match := _STEP_NAME.match(path.name)) and path.is_dir():
            found[int(match.group(1))] = path
    return found


def check_finite(tensors: Mapping[str, torch.Tensor], what: str, step: int) -> None:
    """Raise FloatingPointError if any floating tensor holds NaN or inf: such weights are never written."""
    bad = [name for name, tensor in tensors.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise FloatingPointError(f"{what} at step {step} hold NaN or inf values ({', '.join(bad[:3])}"
                                 f"{', …' if len(bad) > 3 else ''}); nothing was saved. The training diverged: "
                                 "lower optim.lr (or resume from an earlier checkpoint)")


def write_checkpoint(run_dir: Path, step: int, state: dict[str, Any], rank_states: list[dict[str, Any]]) -> Path:
    """Write `state.*` and one `rng_rank{r}.*` per rank for `step` into `checkpoints/step_N` (atomically); `latest`
    does not move (see `commit`)."""
    target = checkpoint_dir(run_dir, step)
    with atomic_directory(target) as tmp:
        save_state(state, tmp, "state")
        for rank, rank_state in enumerate(rank_states):
            save_state(rank_state, tmp, f"rng_rank{rank}")
    return target


def commit(run_dir: Path, step: int, keep: int) -> None:
    """Point `latest` at step `step`'s checkpoint, then keep only the newest `keep` (0: all) up to that step."""
    target = checkpoint_dir(run_dir, step)
    atomic_write_text(target.parent / "latest", target.name)
    kept = sorted(s for s in checkpoint_steps(run_dir) if s <= step)[-keep:] if keep > 0 else None
    for other, path in checkpoint_steps(run_dir).items():
        if kept is not None and other not in kept or other > step:  # older ones, and ones a killed run wrote later
            shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(run_dir: Path, marker: str = state_files(Path(), "state")[0].name) -> Path:
    """The checkpoint `latest` points to (it must hold `marker`); a clear error if the run has none."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        raise FileNotFoundError(f"no checkpoint to resume in {run_dir} (missing {pointer}); start a new run instead")
    name = pointer.read_text().strip()
    target = pointer.parent / name
    if not _STEP_NAME.match(name) or not (target / marker).is_file():
        raise FileNotFoundError(f"checkpoint {target} named by {pointer} is missing or incomplete; point {pointer} "
                                "at an earlier step_N directory there, or start a new run")
    return target


def load_checkpoint(target: Path, rank: int, required: tuple[str, ...] = ()) -> tuple[dict[str, Any],
                                                                                      dict[str, Any] | None]:
    """The shared state (which must hold the `required` keys) and this rank's RNG state (None if the checkpoint was
    written with fewer ranks)."""
    state = load_state(target, "state")
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"checkpoint {target} lacks {', '.join(missing)}: it is damaged or from another version; "
                         "resume from an earlier checkpoint or start a new run")
    rank_file = state_files(target, f"rng_rank{rank}")[0]
    return state, load_state(target, f"rng_rank{rank}") if rank_file.is_file() else None


def export_weights(tensors: Mapping[str, torch.Tensor], run_dir: Path, step: int,
                   metadata: dict[str, str] | None = None) -> Path:
    """Write the run's `model.safetensors` atomically, recording `step` in its metadata (after checking the weights
    are finite)."""
    check_finite(tensors, "the weights", step)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    path = Path(run_dir) / WEIGHTS_FILE
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata={**(metadata or {}), "format": "pt", "step": str(step)})
    return path


def exported_step(run_dir: Path) -> int | None:
    """The step of the run's exported weights (None: no export, or one without a step or unreadable)."""
    path = Path(run_dir) / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as weights:
            step = (weights.metadata() or {}).get("step")
    except (SafetensorError, OSError):
        return None
    return int(step) if step is not None and step.isdigit() else None


def weights_state(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """`model`'s state on the CPU, ready for safetensors; with `dtype`, its floating-point parameters stored in it
    (buffers keep theirs: rotary frequencies and codebook grids would lose precision). Loading casts back to the
    model's dtype."""
    parameters = {name for name, _ in model.named_parameters()}
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and name in parameters and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[name] = tensor.contiguous()
    return state


def load_weights(model: nn.Module, path: Path, repair: str, device: str = "cpu") -> None:
    """Load `path` (safetensors) into `model`, every key present on both sides; a damaged file or one that does not
    fit the model is a one-line ValueError naming it and `repair` (what the user can do)."""
    mismatch = f"{path} does not match its config.json: the checkpoint is incompatible or damaged"
    try:
        state = load_file(str(path), device=device)
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error}): it is truncated or damaged; "
                         f"{repair}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(f"{mismatch} ({str(error).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise ValueError(f"{mismatch} (missing {missing[:3]}, unexpected {unexpected[:3]}); was it saved by another "
                         "version?")
