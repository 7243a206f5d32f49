"""WebVid's layout → index candidates: the results csv(s) + videos stored as `<page_dir>/<videoid>.mp4`.

Notable choices:
- Every `*.csv` in ROOT is read (`results_2M_train.csv`, `results_2M_val.csv`, `results_10M_train.csv`, …); its
  columns are `videoid,contentUrl,duration,page_dir,name`. The caption is `name`.
- The split of a csv's rows comes from its file name: "val" in the name → "val", else "test" → "test", else
  "train" → "train", else the file's stem. `--split` reads only the csvs of that split, so the others are not
  even opened (a 10M-row csv is read lazily, row by row).
- Only part of WebVid is usually downloaded: rows whose file is absent are counted as `missing` and skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from t2v.recipes.prepare import Candidate, csv_rows, normalize_split

COLUMNS = ("videoid", "page_dir", "name")
OPTIONS: tuple[str, ...] = ()


def split_of(csv_path: Path) -> str:
    """The split a csv's file name says: results_2M_val.csv → "val", results_10M_train.csv → "train"."""
    stem = csv_path.stem.lower()
    for word in ("val", "test", "train"):
        if word in stem:
            return word
    return normalize_split(csv_path.stem)


def csv_files(root: Path, split: str | None) -> list[Path]:
    """The csvs in ROOT (those of `split` only, if given); an error naming what is there otherwise."""
    files = sorted(root.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no WebVid csv (e.g. results_2M_train.csv) in {root}: put the csv files there "
                                f"(see recipes/webvid/README.md)")
    if split is None:
        return files
    chosen = [path for path in files if split_of(path) == normalize_split(split)]
    if not chosen:
        splits = ", ".join(f"{split_of(path)} ({path.name})" for path in files)
        raise ValueError(f"no WebVid csv of split {split!r} in {root}: the csvs there give {splits}")
    return chosen


def _rows(path: Path) -> Iterator[dict[str, str]]:
    return csv_rows(path, COLUMNS, "videoid,contentUrl,duration,page_dir,name (WebVid)")


def candidates(root: Path, split: str | None = None) -> Iterator[Candidate]:
    """The csv rows as candidates, lazily (the csv files are checked first)."""
    files = csv_files(root, split)
    return (Candidate(root / row["page_dir"] / f"{row['videoid']}.mp4", (row["name"] or "").strip() or None,
                      split_of(path), {"videoid": row["videoid"]})
            for path in files for row in _rows(path))
