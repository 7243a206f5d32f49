"""The run log: a run's progress bar, its `metrics.jsonl`, and the cadence of logging, evaluation and checkpoints.

`metrics.jsonl` holds one JSON object per line, always valid JSON (non-finite numbers are written as null: bare
`NaN` is not JSON), durable before the checkpoint it precedes: `sync()` flushes and fsyncs the file, and the
trainers call it before a checkpoint, so every line up to the step `latest` names survives a kill. On resume,
`truncate_metrics` drops the lines of steps after the checkpoint (they are logged again) and a partial last line a
kill cut short.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

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


class RunLog:
    """The progress bar and metrics file of one run (shown and written on rank 0 only: `path` None elsewhere), and
    when each periodic chore is due."""

    def __init__(self, path: Path | None, name: str, steps: int, start: int) -> None:
        self.steps = steps
        self.bar = tqdm(total=steps, initial=start, desc=name, unit="step", disable=path is None, dynamic_ncols=True)
        self.metrics = MetricsLog(path)

    def due(self, step: int, every: int, at_end: bool = True) -> bool:
        """Whether step `step` (1-based) closes a period of `every` steps, or (`at_end`) is the run's last."""
        return step % every == 0 or (at_end and step == self.steps)

    def advance(self, **postfix: str) -> None:
        """One step done; `postfix` values show beside the bar."""
        self.bar.update(1)
        if postfix:
            self.bar.set_postfix(**postfix)

    def write(self, record: dict[str, Any]) -> None:
        self.metrics.write(record)

    def sync(self) -> None:
        self.metrics.sync()

    def say(self, text: str) -> None:
        """A line above the bar."""
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()  # first: an error printed next starts on its own line
        self.metrics.close()

    def __enter__(self) -> "RunLog":
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
