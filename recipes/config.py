"""Config dataclasses ⇄ YAML/JSON dicts, and `--set key=value` overrides with the fields' own types.

Configs are plain (possibly nested) dataclasses; this module is the one place that loads, dumps and overrides them.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (nested dataclasses become dicts, tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build dataclass `cls` from a dict, recursing into nested dataclass fields; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif _origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def load(cls: type[C], path: str | Path) -> C:
    """Load dataclass `cls` from a .yaml/.yml/.json file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return from_dict(cls, values or {})


def dump_yaml(config: Any) -> str:
    """The config as YAML text (what runs print and what `load` reads back)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def apply_overrides(config: C, overrides: typing.Iterable[str]) -> C:
    """Return a copy of `config` with each `dotted.key=value` applied; the value is parsed as YAML and type-checked."""
    values = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. --set train.steps=100)")
        key, raw = item.split("=", 1)
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown config key {key!r}: {part!r} is not a section")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key {key!r}; known here: {', '.join(node)}")
        node[parts[-1]] = _parse_like(yaml.safe_load(raw), node[parts[-1]], key)
    return from_dict(type(config), values)


def _parse_like(value: Any, current: Any, key: str) -> Any:
    """Coerce a parsed override towards the type of the value it replaces (int → float is fine, str → int is not)."""
    if current is None or value is None:
        return value
    if isinstance(current, (int, float)) and not isinstance(current, bool) and isinstance(value, str):
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string
            value = float(value) if isinstance(current, float) else int(value)
        except ValueError:
            pass
    if isinstance(current, bool) != isinstance(value, bool):
        raise ValueError(f"--set {key}: expected a boolean (true/false), got {value!r}")
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, (int, float)) and not isinstance(value, (int, float)):
        raise ValueError(f"--set {key}: expected a number, got {value!r}")
    if isinstance(current, list) and not isinstance(value, list):
        raise ValueError(f"--set {key}: expected a list like [1,2], got {value!r}")
    if isinstance(current, str) and not isinstance(value, str):
        return str(value)
    return value


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint)
