"""Kinetics' layout → index candidates: the annotation csvs + clips `<youtube_id>_<start:06d>_<end:06d>.mp4`.

Notable choices:
- The csvs (`label,youtube_id,time_start,time_end,split`) are every `*.csv` in ROOT/annotations/, or in ROOT
  when that folder is absent. A csv without a `split` column takes its split from its file name.
- Clips are found in `ROOT/<split>/` flat or in `ROOT/<split>/<label>/` folders (both layouts, any label folder
  spelling): each split folder is listed once, two levels deep, and clips are matched by file stem, so .mp4,
  .webm, .mkv … all work. The folder of "val" may be named val/, validate/ or valid/.
- Splits are spelled "train", "val", "test" ("validate" → "val"). The caption is the label with underscores as
  spaces ("riding_a_bike" → "riding a bike"); test rows have no label and are counted as `uncaptioned`.
- The csv's time_start/time_end (seconds in the YouTube video) stay in the row as `time_start`/`time_end`; the
  downloaded clip is already cut, so the row has no `start`/`end` range.
"""
from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Iterator

from t2v.recipes.prepare import (SPLIT_ALIASES, VIDEO_SUFFIXES, Candidate, csv_rows, filter_split,
                                 normalize_split)

COLUMNS = ("youtube_id", "time_start", "time_end")
OPTIONS: tuple[str, ...] = ()


def clip_stem(youtube_id: str, time_start: str, time_end: str) -> str:
    """The downloaded clip's file stem: 'abc_000012_000022' for youtube id 'abc', 12 s to 22 s."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def caption_of(label: str | None) -> str | None:
    """'riding_a_bike' → 'riding a bike'; None or blank → None."""
    text = " ".join((label or "").replace("_", " ").split())
    return text or None


def annotation_files(root: Path) -> list[Path]:
    """The annotation csvs: ROOT/annotations/*.csv, else ROOT/*.csv; an error if there are none."""
    folder = root / "annotations" if (root / "annotations").is_dir() else root
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no Kinetics annotation csv (train.csv, validate.csv, …) in {folder}: put them "
                                f"in {root / 'annotations'} (see recipes/kinetics/README.md)")
    return files


def split_folders(root: Path, split: str) -> list[Path]:
    """The existing folders that may hold `split`'s clips: ROOT/val, ROOT/validate, … for "val"."""
    names = [split] + [alias for alias, target in SPLIT_ALIASES.items() if target == split]
    return [root / name for name in names if (root / name).is_dir()]


def clip_files(folders: list[Path]) -> dict[str, Path]:
    """File stem → path of every video directly in `folders` or one folder below (label folders)."""
    files = {}
    for folder in folders:
        for entry in sorted(folder.iterdir()):
            for path in sorted(entry.iterdir()) if entry.is_dir() else [entry]:
                if path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("."):
                    files.setdefault(path.stem, path)
    return files


def _rows(path: Path) -> Iterator[dict[str, str]]:
    for row in csv_rows(path, COLUMNS, "label,youtube_id,time_start,time_end,split (Kinetics)"):
        row["split"] = normalize_split(row.get("split") or path.stem)
        yield row


def candidates(root: Path, split: str | None = None) -> Iterator[Candidate]:
    """The csv rows (of `split`) as candidates, each matched to its clip file."""
    files = annotation_files(root)
    clips: dict[str, dict[str, Path]] = {}  # split → stem → path, listed on first use

    def candidate(row: dict[str, str]) -> Candidate:
        if row["split"] not in clips:
            clips[row["split"]] = clip_files(split_folders(root, row["split"]))
        try:
            stem = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
        except ValueError:
            raise ValueError(f"bad time_start/time_end {row['time_start']!r}/{row['time_end']!r} for "
                             f"{row['youtube_id']!r}: they must be seconds") from None
        path = clips[row["split"]].get(stem, root / row["split"] / f"{stem}.mp4")
        extra = {"label": row.get("label") or "", "youtube_id": row["youtube_id"],
                 "time_start": float(row["time_start"]), "time_end": float(row["time_end"])}
        return Candidate(path, caption_of(row.get("label")), row["split"], extra)

    rows = (row for path in files for row in _rows(path))
    return (candidate(row) for row in filter_split(rows, split, key=itemgetter("split")))
