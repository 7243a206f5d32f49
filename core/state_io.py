"""Resumable training state without pickle: nested containers of tensors, numbers and strings ⇄ safetensors + JSON.

`torch.load` of a pickled file can run any code the file names, so a run directory copied from elsewhere must never
be unpickled. Here the tensors of a state (model and optimizer state dicts, RNG states) go into
`<name>.safetensors` under generated keys and everything around them into `<name>.json`; loading reads data only.
Neither safetensors (flat dicts of tensors) nor torch.distributed.checkpoint (pickled metadata) does this alone.

JSON encoding: dicts with string keys and lists as themselves; tuples, dicts with other keys, numpy arrays,
non-finite floats and tensors as one-key objects (`{"__tuple__": […]}`, `{"__items__": [[k, v], …]}`,
`{"__ndarray__": …}`, `{"__float__": "nan"}`, `{"__tensor__": key}`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from t2v.core.atomic import atomic_file

_MARKERS = ("__tuple__", "__items__", "__ndarray__", "__float__", "__tensor__")


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()  # a copy: no storage shared between keys
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else {"__float__": repr(float(value))}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return [_encode(item, tensors) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and key not in _MARKERS for key in value):
            return {key: _encode(item, tensors) for key, item in value.items()}
        return {"__items__": [[_encode(key, tensors), _encode(item, tensors)] for key, item in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} in a training state (tensors, numbers, strings, "
                    "lists, tuples and dicts only)")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if len(value) == 1 and "__tuple__" in value:
        return tuple(_decode(item, tensors) for item in value["__tuple__"])
    if len(value) == 1 and "__items__" in value:
        return {_decode(key, tensors): _decode(item, tensors) for key, item in value["__items__"]}
    if len(value) == 1 and "__float__" in value:
        return float(value["__float__"])
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    return {key: _decode(item, tensors) for key, item in value.items()}


def state_files(directory: Path, name: str) -> tuple[Path, Path]:
    """The (structure, tensors) files of state `name` in `directory`."""
    return Path(directory) / f"{name}.json", Path(directory) / f"{name}.safetensors"


def save_state(state: Any, directory: str | Path, name: str) -> None:
    """Write `state` as `<name>.json` + `<name>.safetensors` in `directory`, each atomically."""
    structure_path, tensors_path = state_files(Path(directory), name)
    tensors: dict[str, torch.Tensor] = {}
    structure = json.dumps(_encode(state, tensors))
    with atomic_file(tensors_path) as tmp:
        save_file(tensors, str(tmp))
    with atomic_file(structure_path) as tmp:
        tmp.write_text(structure)


def load_state(directory: str | Path, name: str) -> Any:
    """Read a state written by `save_state`; a damaged or missing file is a ValueError / FileNotFoundError naming
    it."""
    structure_path, tensors_path = state_files(Path(directory), name)
    for path in (structure_path, tensors_path):
        if not path.is_file():
            raise FileNotFoundError(f"training state file missing: {path}; the checkpoint is incomplete, resume from "
                                    "an earlier one or start a new run")
    try:
        structure = json.loads(structure_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"training state file {structure_path} is damaged ({error}); resume from an earlier "
                         "checkpoint or start a new run") from None
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"training state file {tensors_path} is damaged ({error}); resume from an earlier "
                         "checkpoint or start a new run") from None
    try:
        return _decode(structure, tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"training state {structure_path} does not match {tensors_path} ({error!r}); resume from "
                         "an earlier checkpoint or start a new run") from None
