"""Atomic, durable writes: a file or directory appears complete under its final name, or not at all.

Each write goes to a temporary sibling (same filesystem) named `.<name>.<random>.tmp`, is flushed to the disk
(`fsync` of its files and of itself), and is renamed into place; the parent directory is then synced so the rename
itself survives a power loss. A kill at any moment leaves either the previous version or the new one, never a
half-written or empty file, plus at most a temporary sibling that `remove_stale_temps` recognises by its name.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

# `.<name>.<random>.tmp[suffix]` (temporary copies) and `.<name>.old` (an older copy kept aside during a swap)
_TEMP_NAME = re.compile(r"^\..+\.(tmp[^/]*|old)$")


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a directory entry list, to the disk."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() else 0)
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def fsync_tree(path: str | Path) -> None:
    """Flush every file and directory under `path` (and `path` itself) to the disk."""
    path = Path(path)
    if path.is_dir():
        for root, _, files in os.walk(path):
            for name in files:
                fsync_path(Path(root) / name)
            fsync_path(root)
    else:
        fsync_path(path)


def durable_replace(source: Path, target: Path) -> None:
    """Rename `source` onto `target` (a file, or a directory onto a missing path) and sync the parent."""
    os.replace(source, target)
    fsync_path(target.parent)


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of this module's temporary or set-aside names."""
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove temporary entries that killed writes left in `directory` (not recursive); returns them."""
    directory = Path(directory)
    stale = [p for p in directory.iterdir() if is_temp_name(p.name)] if directory.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
    return stale


def new_mode(directory: bool = False) -> int:
    """The permissions a new file (directory) gets under this process's umask (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def temp_sibling(path: Path, directory: bool = False, suffix: str = "") -> Path:
    """An empty temporary file (or directory) beside `path`, named as `remove_stale_temps` recognises, with the
    permissions a new one would get."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent))
        os.chmod(temp, new_mode(directory=True))
        return temp
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    os.chmod(name, new_mode())
    return Path(name)


def os_error_of(error: BaseException, path: Path) -> OSError | None:
    """An OSError naming `path` for a writer's error that reports only the OS error number in its text (safetensors
    on a full disk says '(os error 28)'), else None."""
    found = re.search(r"\(os error (\d+)\)", str(error))
    if isinstance(error, OSError) or found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is synced and replaces `path`, on error it is removed."""
    path = Path(path)
    tmp = temp_sibling(path, suffix=suffix)
    try:
        yield tmp
        os.chmod(tmp, new_mode())  # a writer that replaced the file (safetensors does) left its own permissions
        fsync_path(tmp)
        durable_replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if (os_error := os_error_of(error, path)) is not None:
            raise os_error from error
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it is synced and becomes `path` (replacing an older
    one)."""
    path = Path(path)
    tmp = temp_sibling(path, directory=True)
    try:
        yield tmp
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, path)


def replace_directory(source: Path, target: Path) -> None:
    """Move directory `source` onto `target`; an existing `target` stays whole under `.<name>.old` until the new one
    is in place (two renames), then is removed."""
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
        durable_replace(source, target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        durable_replace(source, target)
