"""Any folder of videos → index candidates: captions from a sidecar `.txt` per video, or from a csv/jsonl file.

Notable choices:
- Videos are the files under ROOT, at any depth, ending in .mp4 .avi .mov .webm .mkv .gif (any case); names
  starting with "." (hidden, or a writer's temporary file) are ignored. They are listed in sorted path order.
- Without `--caption-file`, a video's caption is in the `.txt` beside it with the same stem (`a/b.mp4` →
  `a/b.txt`): its non-empty lines are its captions (`caption` is the first; more than one are all kept in
  `captions`). Every row's split is "train".
- With `--caption-file FILE` (a .csv with a header, or a .jsonl of objects): columns `path`, `caption` and an
  optional `split` (default "train"). A relative `path` is relative to ROOT. Several rows of one video add
  captions to it (the first split given is its split). Listed files that are not on disk count as `missing`.
- Videos with no caption (no sidecar, an empty one, or not in the caption file) count as `uncaptioned`.
- `--split` keeps the videos of one split.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterator

from t2v.recipes.prepare import VIDEO_SUFFIXES, Candidate, filter_split, normalize_split

DEFAULT_SPLIT = "train"
OPTIONS = ("caption_file",)


def video_files(root: Path) -> list[Path]:
    """Every video file under `root` (any depth, hidden names skipped), sorted by path."""
    found = []
    for directory, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [Path(directory) / name for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(found)


def sidecar_captions(video: Path) -> list[str]:
    """The non-empty lines of the `.txt` beside `video` (same stem); [] if there is none."""
    path = video.with_suffix(".txt")
    if not path.is_file():
        return []
    return [" ".join(line.split()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_caption_file(path: Path) -> Iterator[dict]:
    """Rows {path, caption, split?} of a .csv (with header) or .jsonl caption file, each checked."""
    if not path.is_file():
        raise FileNotFoundError(f"caption file not found: {path}")
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise ValueError(f"caption file {path} must be a .csv or .jsonl with columns path,caption[,split]")
    with path.open(newline="", encoding="utf-8") as file:
        if path.suffix.lower() == ".csv":
            rows = enumerate(csv.DictReader(file), start=2)
        else:
            rows = ((number, _json_line(path, number, line))
                    for number, line in enumerate(file, start=1) if line.strip())
        for number, row in rows:
            if not isinstance(row.get("path"), str) or not row["path"] or not isinstance(row.get("caption"), str):
                raise ValueError(f"{path}:{number}: each row needs a \"path\" and a \"caption\" (and may have a "
                                 f"\"split\")")
            yield row


def _json_line(path: Path, number: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{number}: each line must be a JSON object like {{\"path\": …, \"caption\": …}}")
    return row


def _from_sidecars(root: Path) -> list[Candidate]:
    found = []
    for video in video_files(root):
        captions = sidecar_captions(video)
        extra = {"captions": captions} if len(captions) > 1 else {}
        found.append(Candidate(video, captions[0] if captions else None, DEFAULT_SPLIT, extra))
    return found


def _from_caption_file(root: Path, caption_file: Path) -> list[Candidate]:
    listed: dict[str, tuple[list[str], str]] = {}  # absolute path → (captions, split), in file order
    for row in read_caption_file(caption_file):
        key = os.path.normpath(os.path.join(os.path.abspath(root), row["path"]))
        captions, _ = listed.setdefault(key, ([], normalize_split(row.get("split") or DEFAULT_SPLIT)))
        caption = " ".join(row["caption"].split())
        if caption and caption not in captions:
            captions.append(caption)
    found = [Candidate(Path(key), captions[0] if captions else None, split,
                       {"captions": captions} if len(captions) > 1 else {})
             for key, (captions, split) in listed.items()]
    found += [Candidate(video, None, DEFAULT_SPLIT) for video in video_files(root)
              if os.path.normpath(os.path.abspath(video)) not in listed]
    return found


def candidates(root: Path, split: str | None = None, caption_file: str | os.PathLike | None = None
               ) -> Iterator[Candidate]:
    """Every video under ROOT with its caption(s); listed-but-absent files and uncaptioned videos included (the
    caller counts them)."""
    found = _from_sidecars(root) if caption_file is None else _from_caption_file(root, Path(caption_file))
    if not found:
        raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {root}")
    return filter_split(found, split)
