"""The stills dataset joins `t2v data prepare`: a folder written by `t2v data stills` → index candidates.

ROOT is that folder; its `index.jsonl` gives each clip's path, caption, split ("seen"/"heldout") and what the clip
shows (motion, direction, photos: kept as extra keys). Preparing re-probes every clip and writes the documented
index format (fps, duration, size added), e.g. to check a copied dataset or to move the index elsewhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from t2v.recipes.prepare import Candidate, filter_split
from t2v.tokenizer.data import read_index

INDEX = "index.jsonl"
OPTIONS: tuple[str, ...] = ()
EXTRA = ("motion", "direction", "photos")


def candidates(root: Path, split: str | None = None) -> Iterator[Candidate]:
    """The clips of ROOT/index.jsonl (of `split`), captions, splits and what they show as written."""
    index = root / INDEX
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: ROOT must be a folder written by `t2v data stills ROOT --num N`")
    found = [Candidate(Path(row["path"]), row["caption"], row.get("split", "seen"),
                       {key: row[key] for key in EXTRA if key in row}) for row in read_index(index)]
    return filter_split(found, split)
