"""Dataset preparation: a dataset as downloaded → the project's index (jsonl), with a report of what was skipped.

Each dataset's `t2v.recipes.<name>.prepare` module knows only its layout: `candidates(root, split)` lists
(path, caption, split, extra) entries. This module does the rest, once for every dataset: probe each file, skip
and count the bad ones, write the index atomically, summarise.

An index line: `{"path", "caption", "split", "fps", "duration", "size": [H, W], …extra}`. `path` is relative to
the index file's directory when the video lies under it, else absolute (`t2v.tokenizer.data.read_index` resolves
relative paths against the index's directory).

Notable choices:
- A file is skipped, never fatal, and counted under one reason: `missing` (not on disk), `empty` (zero bytes),
  `unreadable` (its header cannot be read, or gives no frame rate, size or duration) or `uncaptioned` (the
  dataset gives it no caption). Only the header is read (`probe`): a file truncated after a good header passes
  here and is found by `t2v data check`.
- Candidates may be a lazy iterable (WebVid's csv has 10M rows): files are probed by a thread pool chunk by chunk,
  in order, and rows stream into the temporary index; nothing holds the whole dataset in memory.
- An index with no usable row is never written: the error names the skip counts and the old index stays.
"""
from __future__ import annotations

import csv
import importlib
import itertools
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

from t2v.recipes.registry import RECIPES
from t2v.tokenizer.data import write_index
from t2v.tokenizer.video_io import probe

SKIP_REASONS = ("missing", "empty", "unreadable", "uncaptioned")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".gif")
RESERVED_KEYS = ("path", "caption", "split", "fps", "duration", "size", "start", "end")  # start/end: clip ranges
SPLIT_ALIASES = {"validate": "val", "valid": "val", "validation": "val"}
EXAMPLES_PER_REASON = 3
_CHUNK = 256  # candidates probed per batch of the thread pool
T = TypeVar("T")


@dataclass
class Candidate:
    """One video a dataset lists: its file, its caption (None: the dataset gives none), split and extra keys."""

    path: Path
    caption: str | None
    split: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra) & set(RESERVED_KEYS))
        if clash:
            raise ValueError(f"extra index keys {clash} clash with the index's own keys {list(RESERVED_KEYS)}")


@dataclass
class PrepareReport:
    """What `prepare` wrote and what it skipped (reason → count, with a few example paths each)."""

    name: str
    out_index: str
    rows: int = 0
    hours: float = 0.0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.rows + sum(self.skipped.values())

    def add_row(self, row: dict) -> None:
        self.rows += 1
        self.hours += row["duration"] / 3600
        self.splits[row["split"]] = self.splits.get(row["split"], 0) + 1

    def add_skip(self, reason: str, path: Path | str) -> None:
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(str(path))

    def skip_summary(self) -> str:
        """'skipped 3 of 10 (missing 1, empty 1, unreadable 1, uncaptioned 0; e.g. missing a.mp4)'."""
        counts = ", ".join(f"{reason} {self.skipped[reason]:,}" for reason in SKIP_REASONS)
        text = f"skipped {sum(self.skipped.values()):,} of {self.total:,} ({counts})"
        examples = "; ".join(f"{reason}: {', '.join(paths)}" for reason, paths in self.examples.items())
        return text + (f"; e.g. {examples}" if examples else "")

    def format(self) -> str:
        """A one-paragraph summary: rows per split, hours of video, skip counts with example paths."""
        splits = ", ".join(f"{name} {count:,}" for name, count in sorted(self.splits.items()))
        return (f"{self.name}: wrote {self.rows:,} rows ({splits}; {self.hours:,.1f} hours of video) to "
                f"{self.out_index}; {self.skip_summary()}.")

    __str__ = format


def normalize_split(name: str) -> str:
    """A dataset's split name in the index's spelling: 'validate'/'valid'/'validation' → 'val'."""
    name = name.strip().lower()
    return SPLIT_ALIASES.get(name, name)


def filter_split(items: Iterable[T], split: str | None, key: Callable[[T], str] = attrgetter("split")) -> Iterator[T]:
    """The items (candidates, or csv rows with `key`) of `split`, all for None; lazily, raising at the end when
    none had it."""
    if split is None:
        yield from items
        return
    wanted, seen = normalize_split(split), Counter()
    for item in items:
        seen[key(item)] += 1
        if key(item) == wanted:
            yield item
    if seen[wanted] == 0:
        raise ValueError(f"no videos of split {split!r}: the splits here are {', '.join(sorted(seen)) or 'none'}; "
                         f"choose one of them with --split, or leave --split out")


def index_path(path: Path, index_dir: Path) -> str:
    """`path` as written in the index: relative to `index_dir` when under it (posix separators), else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.path.abspath(index_dir))
    return absolute if relative.split(os.sep)[0] == os.pardir else Path(relative).as_posix()


def probe_candidate(candidate: Candidate, index_dir: Path) -> tuple[dict | None, str | None]:
    """(index row, None) for a usable candidate, else (None, skip reason). Reads the file's header only."""
    if candidate.caption is None or not candidate.caption.strip():
        return None, "uncaptioned"
    try:
        if candidate.path.is_file() and candidate.path.stat().st_size == 0:
            return None, "empty"
        info = probe(candidate.path)
    except FileNotFoundError:
        return None, "missing"
    except (ValueError, OSError):
        return None, "unreadable"
    if not (info.fps > 0 and info.duration > 0 and info.width > 0 and info.height > 0):
        return None, "unreadable"
    row = {"path": index_path(candidate.path, index_dir), "caption": candidate.caption.strip(),
           "split": candidate.split, "fps": float(info.fps), "duration": float(info.duration),
           "size": [int(info.height), int(info.width)]}
    return {**row, **candidate.extra}, None


def csv_rows(path: Path, columns: Iterable[str], expected: str) -> Iterator[dict[str, str]]:
    """The rows of a csv file as dicts; a one-line error names the columns it lacks (`expected`: its header)."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}: expected a csv with {expected}")
        yield from reader


def probe_rows(candidates: Iterable[Candidate], index_dir: Path, report: PrepareReport,
               workers: int = 4) -> Iterator[dict]:
    """Index rows of the usable candidates, in order; the others are counted in `report` (a tqdm bar shows both)."""
    total = len(candidates) if hasattr(candidates, "__len__") else None
    iterator = iter(candidates)
    with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=total, desc=report.name, unit="file") as bar:
        while chunk := list(itertools.islice(iterator, _CHUNK)):
            results = pool.map(probe_candidate, chunk, itertools.repeat(index_dir))
            for candidate, (row, reason) in zip(chunk, results):
                bar.update()
                if row is None:
                    report.add_skip(reason, candidate.path)
                    continue
                report.add_row(row)
                yield row
            bar.set_postfix(rows=report.rows, skipped=report.total - report.rows)


def prepare(name: str, root: str | os.PathLike, out_index: str | os.PathLike, split: str | None = None,
            workers: int = 4, **options: Any) -> PrepareReport:
    """Prepare dataset `name` (a recipe) found at `root` into the index `out_index`; returns the report.

    `options` go to the dataset's `candidates` (e.g. `caption_file` for `folder`); each module lists the ones it
    takes in `OPTIONS`. Example: `prepare("ucf101", "data/ucf101", "data/ucf101/index.jsonl", split="1")`
    """
    if name not in RECIPES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(RECIPES)}")
    root, out_index = Path(root), Path(out_index)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found (or not a folder): {root} (recipes/{name}/README.md says "
                                f"how to obtain {name} and the layout expected)")
    module = importlib.import_module(f"t2v.recipes.{name}.prepare")
    unknown = sorted(key for key, value in options.items() if value is not None and key not in module.OPTIONS)
    if unknown:
        raise ValueError(f"{', '.join('--' + key.replace('_', '-') for key in unknown)} is not an option of "
                         f"the {name} recipe")
    options = {key: value for key, value in options.items() if value is not None}
    report = PrepareReport(name=name, out_index=str(out_index))
    candidates = module.candidates(root, split, **options)
    write_index(_fail_if_empty(probe_rows(candidates, out_index.parent, report, workers), report, root), out_index)
    return report


def _fail_if_empty(rows: Iterator[dict], report: PrepareReport, root: Path) -> Iterator[dict]:
    """Pass rows through; raise at the end when there were none (so no empty index replaces an old one)."""
    yield from rows
    if report.rows == 0:
        raise ValueError(f"{report.name}: no usable video under {root}: {report.skip_summary()}. Check the layout "
                         f"in recipes/{report.name}/README.md; {report.out_index} was not written")
