"""A dataset folder of drawn clips (`t2v data shapes`, `t2v data stills`): the check of its folder and its atomic
write, shared by the procedural recipes.

A folder holds videos/00000.mp4 … , index.jsonl (one row per clip: its path and the row fields the draw gave) and
a marker file, `.t2v-dataset`, naming the command that wrote it: `overwrite` replaces only a folder with that
marker, never anything else. The whole folder is written into a temporary sibling and renamed into place when
complete, so a failure or a kill never leaves a partial or mixed dataset.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from t2v.core.atomic import atomic_directory
from t2v.tokenizer.index import write_index
from t2v.tokenizer.video_io import write_video

DATASET_MARKER = ".t2v-dataset"  # in every dataset folder write_clips writes: what `overwrite` may replace
WriteVideo = Callable[..., Path]


def check_dataset_dir(out_dir: str | os.PathLike, name: str, overwrite: bool = False) -> None:
    """Raise unless `out_dir` is new, empty, or (with `overwrite`) a folder `t2v data <name>` wrote."""
    out_dir = Path(out_dir)
    if not os.path.lexists(out_dir):
        return
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file: choose a new folder for the dataset")
    names = sorted(os.listdir(out_dir))
    if not names:
        return
    if not ((out_dir / DATASET_MARKER).is_file() and (out_dir / "index.jsonl").is_file()):
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        why = (f"it has no {DATASET_MARKER} marker (a prepared index, or a dataset of an older version: delete it "
               "yourself if it is to go)" if "index.jsonl" in names else f"it holds {names[0]!r}{more}")
        raise FileExistsError(f"{out_dir} is a folder `t2v data {name}` did not write ({why}): choose a new or empty "
                              "folder; --overwrite never replaces it")
    if not overwrite:
        raise FileExistsError(f"{out_dir} already holds a {name} dataset: choose another folder, or pass --overwrite "
                              "to replace it whole")


def write_clips(out_dir: str | os.PathLike, clips: Iterable[tuple[dict, np.ndarray]], *, name: str, num: int,
                overwrite: bool = False, write: WriteVideo = write_video) -> Path:
    """Write the (row fields with "fps", uint8 (T, H, W, 3)) pairs of `clips` to out_dir/videos/*.mp4 and
    out_dir/index.jsonl; returns the index path. `name` is the dataset's (`t2v data <name>`), `num` the number of
    clips (for the progress bar), `write` the video writer. The folder is checked before and again after the
    clips are written."""
    out_dir = Path(out_dir)
    check_dataset_dir(out_dir, name, overwrite)
    # 1. Everything goes into a temporary sibling, 2. which replaces out_dir (checked again) only when complete.
    with atomic_directory(out_dir) as temp:
        (temp / "videos").mkdir()
        rows = []
        for i, (row, clip) in enumerate(tqdm(clips, desc=name, unit="clip", total=num)):
            row = {"path": f"videos/{i:05d}.mp4", **row}
            write(temp / row["path"], clip, fps=row["fps"])
            rows.append(row)
        write_index(rows, temp / "index.jsonl")
        (temp / DATASET_MARKER).write_text(f"a {name} dataset written by `t2v data {name}`; its --overwrite "
                                           "replaces this folder whole\n")
        check_dataset_dir(out_dir, name, overwrite)  # the folder may have changed while the clips were written
    return out_dir / "index.jsonl"


def split_counts(index_rows: list[dict]) -> dict[str, int]:
    """Rows per split, e.g. {'seen': 90, 'heldout': 10}."""
    return dict(Counter(row.get("split", "?") for row in index_rows))
