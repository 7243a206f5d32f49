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

from t2v.core.atomic import atomic_write_text

C = TypeVar("C")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (nested dataclasses become dicts, tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def write_config(path: str | Path, config: Any) -> Path:
    """Write `config` as indented JSON to `path` atomically (a run's or a model's config.json)."""
    return atomic_write_text(path, json.dumps(to_dict(config), indent=2))


def from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build dataclass `cls` from a dict, recursing into nested dataclass fields; unknown keys are an error. A class
    that reads older layouts of its own has a static `upgrade(values) -> values`, applied first."""
    upgrade = getattr(cls, "upgrade", None)
    if upgrade is not None:
        values = upgrade(values)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(values) - names))
    if unknown:
        raise ValueError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif dataclasses.is_dataclass(hint) and value is not None:
            raise ValueError(f"{cls.__name__}.{name} is a section: expected a mapping of its keys, got {value!r}")
        elif _origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def load(cls: type[C], path: str | Path) -> C:
    """Load dataclass `cls` from a .yaml/.yml/.json file; a file that does not parse, is not a mapping or does not
    fit `cls` is a one-line ValueError naming the file (and the line, for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = parse_file(path)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a mapping of keys to values (such as `steps: 100`), not a "
                         f"{type(values).__name__}; fix the file")
    try:
        return from_dict(cls, values)
    except (TypeError, ValueError) as error:  # unknown keys, wrong types, the config's own checks
        raise ValueError(f"{path}: {error}; fix the file") from None


def parse_file(path: Path) -> Any:
    """The parsed contents of a .json (JSON) or other (YAML) file; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (not UTF-8); give a .yaml or .json config") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: invalid JSON: {error.msg} (line {error.lineno}, column {error.colno}); "
                             "fix the file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path}: invalid YAML: {problem}{where}; fix the file") from None


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
