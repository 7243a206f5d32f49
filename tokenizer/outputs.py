"""Output paths of written videos, images and frame folders: the kind a path names, and what it may replace.

The one place of the rule: `VideoWriter` and `write_image` check at construction (before any work) and again just
before their rename; the CLI checks every output of a command with `check_outputs` before it loads a model.
- The kind comes from the suffix: .mp4, .webm, .gif a video; .png, .jpg, .jpeg one image (one frame); no suffix, or
  a trailing '/', a folder of PNG frames (`frames.v2/` too: only a file suffix before the '/' is ambiguous).
  Another suffix, a file suffix with a trailing '/' (`out.mp4/`) and a path with no name (`.`, `..`) are errors.
- A file output never replaces a folder, and a frame folder never replaces a file.
- A frame folder goes into a new or empty folder, or replaces a frame folder this program wrote: one holding the
  marker `.t2v-frames`, `fps.txt` and `frame_NNNNN.png` files, and nothing else.
- An existing output (a file, or a frame folder this program wrote) is replaced only with `overwrite`; any other
  folder is never replaced, with or without it.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterable

from t2v.core.atomic import durable_replace, fsync_tree, replace_directory

VIDEO_KINDS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}
IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE, FRAMES = "image", "frames"  # the kinds of a one-image file and of a folder of PNG frames
FRAME_MARKER = ".t2v-frames"  # written into every frame folder: what makes it replaceable with `overwrite`
FPS_FILE = "fps.txt"
_FRAME_NAME = re.compile(r"frame_\d{5,}\.png")
KINDS = (".mp4, .webm or .gif (a video), .png or .jpg (one image), or no suffix or a trailing '/' (a folder of PNG "
         "frames)")


def output_kind(path: str | os.PathLike) -> str:
    """'mp4', 'webm', 'gif', 'image' or 'frames', by the path's suffix (see the file header); ValueError otherwise."""
    text = os.fspath(path)
    name = Path(text).name
    if name in ("", ".."):
        raise ValueError(f"cannot write to {text!r}: it names no file or folder; give a file such as "
                         "out.mp4 or a new folder such as frames/")
    suffix = Path(text).suffix.lower()
    known = suffix in VIDEO_KINDS or suffix in IMAGE_OUTPUT_SUFFIXES
    if text.endswith(("/", os.sep)):
        if known:
            raise ValueError(f"cannot write {text}: the trailing '/' names a folder of frames but {suffix} a file; "
                             f"drop the '/' for a {suffix} file, or the suffix for a folder")
        return FRAMES
    if not suffix:
        return FRAMES
    if not known:
        raise ValueError(f"cannot write {text}: unknown suffix {suffix!r}; use {KINDS}")
    return VIDEO_KINDS.get(suffix, IMAGE)


def is_frame_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a frame folder this program wrote: its marker, fps.txt and frame PNGs, nothing else."""
    path = Path(path)
    if not path.is_dir():
        return False
    names = set(os.listdir(path))
    return {FRAME_MARKER, FPS_FILE} <= names and all(
        _FRAME_NAME.fullmatch(name) for name in names - {FRAME_MARKER, FPS_FILE})


def _check_parent(path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
            return


def check_target(path: Path, kind: str, overwrite: bool) -> None:
    """Raise with the fix unless an output of `kind` may be written at `path` now (see the file header)."""
    _check_parent(path)
    if not os.path.lexists(path):
        return
    if kind != FRAMES:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder: a {kind} output never replaces a folder; choose a file "
                                    "path")
        if not overwrite:
            raise FileExistsError(f"{path} already exists: choose another path, or pass --overwrite to replace it")
        return
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file: a folder of frames never replaces a file; choose another path")
    names = sorted(os.listdir(path))
    if not names:
        return
    if not is_frame_folder(path):
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        raise FileExistsError(f"{path} is a folder t2v did not write (it holds {names[0]!r}{more}): choose a new or "
                              "empty folder; --overwrite never replaces it")
    if not overwrite:
        raise FileExistsError(f"{path} holds frames t2v wrote earlier: choose another folder, or pass --overwrite to "
                              "replace them")


def check_output(path: str | os.PathLike, *, overwrite: bool = False, frames: int | None = None) -> str:
    """The kind of output `path` names, after checking that `frames` frames (None: unknown yet) may be written
    there; raises ValueError or an OSError with the fix, and creates nothing."""
    kind = output_kind(path)
    if kind == IMAGE and frames is not None and frames > 1:
        raise ValueError(f"cannot write {frames} frames to {os.fspath(path)}: a {Path(path).suffix} file holds one "
                         "image; use a folder path (no suffix) or a video suffix (.mp4, .webm, .gif)")
    check_target(Path(path), kind, overwrite)
    return kind


def check_outputs(paths: Iterable[str | os.PathLike | None], *, overwrite: bool = False,
                  frames: int | None = None) -> None:
    """`check_output` for each path of a command (None entries are skipped), before any work is done."""
    for path in paths:
        if path is not None:
            check_output(path, overwrite=overwrite, frames=frames)


def place_output(temp: Path, path: Path, kind: str, overwrite: bool) -> None:
    """Move the finished `temp` onto `path`, checking the rule again first (the path may have changed while the
    output was written); an older frame folder stays whole aside until the new one is in place."""
    check_target(path, kind, overwrite)
    fsync_tree(temp)  # durable before it has the final name
    if kind == FRAMES and os.path.lexists(path):
        replace_directory(temp, path)
    else:
        durable_replace(temp, path)  # a folder appearing meanwhile: a file cannot replace it, nor a folder a full one


def remove(path: Path) -> None:
    """Delete a file, a symlink (not its target) or a folder tree; nothing if it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
