"""UCF-101's layout → index candidates: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` + the official `ucfTrainTestlist/`.

Notable choices:
- `--split` picks one of the three official splits: `1`, `2`, `3` (both halves, rows tagged "train"/"test"), or
  one half of one: `train1` … `test3`. Default: split 1, both halves.
- The caption is the class name in words (`class_caption`): CamelCase is split at each capital, a run of
  capitals is one word (an acronym) ending before a capital that starts a lower-case word, digits are words of
  their own, and everything is lower-cased: "ApplyEyeMakeup" → "apply eye makeup", "YoYo" → "yo yo",
  "TVShow" → "tv show", "Kick2Ball" → "kick 2 ball".
- The class name comes from the list's folder (`ApplyEyeMakeup/v_…avi`); classInd.txt, when present, adds the
  official 1-based class number as `class_id`.
"""
from __future__ import annotations

import re
from pathlib import Path

from t2v.recipes.prepare import Candidate

VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"
HALVES = ("train", "test")
SPLITS = ("1", "2", "3") + tuple(f"{half}{number}" for number in "123" for half in HALVES)
OPTIONS: tuple[str, ...] = ()
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def class_caption(name: str) -> str:
    """A CamelCase class name in lower-case words: "ApplyEyeMakeup" → "apply eye makeup" (see the header)."""
    words = _WORD.findall(name)
    return " ".join(words).lower() if words else name.lower()


def parse_split(split: str | None) -> tuple[str, tuple[str, ...]]:
    """'1' → ('1', ('train', 'test')); 'test2' → ('2', ('test',)); None → split 1, both halves."""
    split = "1" if split is None else split.strip().lower()
    if split not in SPLITS:
        raise ValueError(f"unknown UCF-101 split {split!r}: choose one of {', '.join(SPLITS)}")
    return split[-1], HALVES if split.isdigit() else (split[:-1],)


def class_ids(list_dir: Path) -> dict[str, int]:
    """Class name → official number from classInd.txt (lines like '1 ApplyEyeMakeup'); empty if absent."""
    path = list_dir / "classInd.txt"
    if not path.is_file():
        return {}
    ids = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            if parts:
                raise ValueError(f"{path}:{number}: expected a line like '1 ApplyEyeMakeup', got {line!r}")
            continue
        ids[parts[1]] = int(parts[0])
    return ids


def candidates(root: Path, split: str | None = None) -> list[Candidate]:
    """The videos of the chosen official split, in list order."""
    videos, lists = root / VIDEO_DIR, root / LIST_DIR
    for folder in (videos, lists):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} not found: ROOT must hold UCF-101/ and ucfTrainTestlist/ (see "
                                    f"recipes/ucf101/README.md)")
    number, halves = parse_split(split)
    ids = class_ids(lists)
    found = []
    for half in halves:
        list_file = lists / f"{half}list0{number}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(f"{list_file} not found: ucfTrainTestlist/ must hold the official "
                                    f"trainlist0N.txt and testlist0N.txt files")
        for line in list_file.read_text().splitlines():
            if not line.strip():
                continue
            relative = line.split()[0]  # trainlists add the class number after the path
            name = relative.split("/")[0]
            extra = {"label": name} | ({"class_id": ids[name]} if name in ids else {})
            found.append(Candidate(videos / relative, class_caption(name), half, extra))
    return found
