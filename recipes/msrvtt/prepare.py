"""MSR-VTT's layout → index candidates: `videos/video0.mp4` … + the official `*videodatainfo*.json` annotations.

Notable choices:
- Every `*videodatainfo*.json` and `MSRVTT_data.json` in ROOT (or ROOT/annotation/) is read (all share one
  format): `train_val_videodatainfo.json` and `test_videodatainfo.json` together give all 10,000 videos. A video
  listed by two files is taken once.
- Videos are looked up by id in `videos/`, then `videos/all/`, `TrainValVideo/` and `TestVideo/` (the folder
  names of the common downloads); one not found anywhere is `missing` at `videos/<video_id>.mp4`.
- A video has ~20 captions: all are kept, in file order and without repeats, in the row's `captions` list;
  `caption` is the first.
- The split is the file's own ("train", "validate", "test"), spelled "val" for "validate" as in every recipe;
  `--split` keeps one of them (either spelling).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from t2v.recipes.prepare import Candidate, filter_split, normalize_split

VIDEO_DIRS = ("videos", "videos/all", "TrainValVideo", "TestVideo")
ANNOTATION_PATTERNS = ("*videodatainfo*.json", "MSRVTT_data.json")
OPTIONS: tuple[str, ...] = ()


def annotation_files(root: Path) -> list[Path]:
    """The annotation json files in ROOT and ROOT/annotation/; an error if there are none."""
    files = [path for folder in (root, root / "annotation") for pattern in ANNOTATION_PATTERNS
             for path in sorted(folder.glob(pattern))]
    if not files:
        raise FileNotFoundError(f"no MSR-VTT annotation file (train_val_videodatainfo.json, test_videodatainfo.json "
                                f"or MSRVTT_data.json) in {root}: put it there (see recipes/msrvtt/README.md)")
    return files


def video_paths(root: Path) -> dict[str, Path]:
    """Video id → file, from the first of VIDEO_DIRS holding `<video_id>.mp4`."""
    found: dict[str, Path] = {}
    for folder in VIDEO_DIRS:
        for path in sorted((root / folder).glob("*.mp4")):
            found.setdefault(path.stem, path)
    return found


def read_annotations(path: Path) -> tuple[list[dict], list[dict]]:
    """(videos, sentences) of one annotation file, checked for the fields used."""
    expected = '{"videos": [{"video_id", "split", …}], "sentences": [{"video_id", "caption"}, …]}'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}): re-download it") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    sentences = data.get("sentences") if isinstance(data, dict) else None
    if not (isinstance(videos, list) and isinstance(sentences, list)
            and all(isinstance(v, dict) and {"video_id", "split"} <= v.keys() for v in videos)
            and all(isinstance(s, dict) and {"video_id", "caption"} <= s.keys() for s in sentences)):
        raise ValueError(f"{path} is not an MSR-VTT annotation file: expected {expected}")
    return videos, sentences


def candidates(root: Path, split: str | None = None) -> Iterator[Candidate]:
    """Each annotated video once, with all its captions."""
    splits: dict[str, str] = {}  # video id → split, in file order
    categories: dict[str, int] = {}
    captions: dict[str, list[str]] = {}
    for path in annotation_files(root):
        videos, sentences = read_annotations(path)
        for video in videos:
            video_id = str(video["video_id"])
            splits.setdefault(video_id, normalize_split(str(video["split"])))
            if "category" in video:
                categories.setdefault(video_id, video["category"])
        for sentence in sentences:
            texts = captions.setdefault(str(sentence["video_id"]), [])
            text = " ".join(str(sentence["caption"]).split())
            if text and text not in texts:
                texts.append(text)
    files = video_paths(root)
    found = []
    for video_id, video_split in splits.items():
        texts = captions.get(video_id, [])
        extra = {"video_id": video_id, "captions": texts} | (
            {"category": categories[video_id]} if video_id in categories else {})
        path = files.get(video_id, root / VIDEO_DIRS[0] / f"{video_id}.mp4")
        found.append(Candidate(path, texts[0] if texts else None, video_split, extra))
    return filter_split(found, split)
