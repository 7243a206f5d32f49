"""A run's `metrics.jsonl`: one JSON object per line, always valid JSON, durable before the checkpoint it precedes.

Non-finite numbers are written as null (bare `NaN` is not JSON). `sync()` flushes and fsyncs the file; the trainers
call it before a checkpoint, so every line up to the step `latest` names survives a kill. On resume, `truncate`
drops the lines of steps after the checkpoint (they are logged again) and a partial last line a kill cut short.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from t2v.core.atomic import atomic_write_text


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends records to `path` (or to nothing, on ranks that do not log)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: TextIO | None = open(path, "a") if path is not None else None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            line = json.dumps({key: _finite(value) for key, value in record.items()}, allow_nan=False)
            self._file.write(line + "\n")
            self._file.flush()

    def sync(self) -> None:
        """Make every line written so far durable."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a partial last line (a killed write) is dropped, a damaged line before it is a
    ValueError naming the file and line."""
    lines = path.read_text().splitlines() if path.is_file() else []
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # cut short by a kill: its step is after the checkpoint and is logged again
                break
            raise ValueError(f"{path}:{number} is not valid JSON; remove or repair that line, then resume") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number} is not a JSON object; remove or repair that line, then resume")
        records.append(record)
    return records


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after `step` (the checkpoint being resumed), and a partial last line."""
    if not path.is_file():
        return
    kept = [record for record in read_metrics(path) if record.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))
