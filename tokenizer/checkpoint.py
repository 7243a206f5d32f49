"""Resumable training state: numbered checkpoint directories under `checkpoints/`, a `latest` pointer, RNG states.

Each checkpoint is written into a temporary directory and renamed into place, then `latest` is replaced
atomically, so a kill at any moment leaves the previous checkpoint whole and pointed to. Each rank saves its own
RNG state beside the shared one (rank 0 writes the model and optimizer states).
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from t2v.tokenizer.atomic import atomic_directory, atomic_write_text


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint being resumed (they will be logged again)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}"


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], rank_states: list[dict[str, Any]],
                    keep: int = 2) -> Path:
    """Write `state.pt` and one `rng_rank{r}.pt` per rank for `step`, point `latest` at it, prune old ones."""
    target = checkpoint_dir(run_dir, step)
    with atomic_directory(target) as tmp:
        torch.save(state, tmp / "state.pt")
        for rank, rank_state in enumerate(rank_states):
            torch.save(rank_state, tmp / f"rng_rank{rank}.pt")
    atomic_write_text(Path(run_dir) / "checkpoints" / "latest", target.name)
    existing = sorted(p for p in target.parent.glob("step_*") if p.is_dir())
    for old in existing[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint `latest` points to; a clear error if the run has none."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        raise FileNotFoundError(f"no checkpoint to resume in {run_dir} (missing {pointer}); start a new run instead")
    target = pointer.parent / pointer.read_text().strip()
    if not (target / "state.pt").is_file():
        raise FileNotFoundError(f"checkpoint {target} named by {pointer} is missing or incomplete")
    return target


def load_checkpoint(target: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The shared state and this rank's RNG state (None if the checkpoint was written with fewer ranks)."""
    state = torch.load(target / "state.pt", map_location="cpu", weights_only=False)
    rank_file = target / f"rng_rank{rank}.pt"
    rank_state = torch.load(rank_file, map_location="cpu", weights_only=False) if rank_file.is_file() else None
    return state, rank_state
