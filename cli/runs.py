"""Numbered run directories: runs/<recipe>-<stage>-NNNNN, the next free number."""
from __future__ import annotations

import re
from pathlib import Path


def next_run_dir(root: Path, prefix: str, create: bool = True) -> Path:
    """`root/prefix-NNNNN` with NNNNN one above the highest existing; created (exclusively) when `create`."""
    root.mkdir(parents=True, exist_ok=True) if create else None
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{5}})$")
    taken = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else []) if (m := pattern.match(p.name))]
    number = max(taken, default=0) + 1
    while True:
        candidate = root / f"{prefix}-{number:05d}"
        if not create:
            return candidate
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # another process took it first
            number += 1
