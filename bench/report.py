"""What every bench script ends with: its result written as JSON (the folder made as needed) and where it went."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(result: dict[str, Any], out: str | Path) -> Path:
    """Write `result` as indented JSON to `out` and say so on stdout."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return out
