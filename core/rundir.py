"""One owner per run directory: a lock while a run writes, no fresh run over an old one, no leftovers of a failed
start.

`claim(run_dir, resume)` (rank 0 only) takes an exclusive `flock` on `run_dir/.lock`, held until the run ends or
its process dies (the kernel drops it, so a killed run never leaves a stale lock); the lock file names the holder.
A fresh run needs a new or empty directory, a resumed one an existing one. Temporary entries of killed saves are
removed. If a fresh run fails before its first checkpoint (missing data, a full disk, Ctrl-C), `abandon()`
removes what it wrote: nothing could resume it, and a retry starts from the same place.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from t2v.core.atomic import remove_stale_temps

LOCK_FILE = ".lock"
_SCRATCH_DIRS = ("", "checkpoints", "samples")  # where saves put temporary entries
_HELD: list = []  # the lock files this process holds open


def _close_inherited_locks() -> None:
    """In a forked child (a DataLoader worker), close its copies of the parent's lock files: a flock lives as long
    as any copy, and a worker outlives a killed trainer by seconds, during which its run could not be resumed."""
    for handle in _HELD:
        with contextlib.suppress(OSError):
            handle.close()
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class RunDirectoryBusy(FileExistsError):
    """Another process holds the run directory's lock."""


class RunClaim:
    """The lock of one run on its directory; `release()` (or the end of the process) frees it."""

    def __init__(self, run_dir: Path, resume: bool) -> None:
        self.run_dir, self.resume = Path(run_dir), resume
        # the outermost directory this claim makes (run_dir or a missing parent such as runs/): abandon removes it
        self.made = next((p for p in reversed([self.run_dir, *self.run_dir.parents]) if not p.exists()), None)
        if resume and not self.run_dir.exists():
            raise FileNotFoundError(f"no checkpoint to resume in {self.run_dir} (the directory does not exist); "
                                    "start a new run instead")
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise NotADirectoryError(f"{self.run_dir} is a file, not a run directory: choose another --out")
        if not resume:
            self._refuse_if_used()  # before the lock file: nothing is added to a folder that is not ours
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.run_dir / LOCK_FILE, "a+")
        except OSError:
            self._remove_made()
            raise
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _HELD.append(self._handle)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown process"
            self._handle.close()
            raise RunDirectoryBusy(f"{self.run_dir} is in use by another run ({holder}); wait for it to end or "
                                   "choose another --out directory") from None
        if not resume:
            try:
                self._refuse_if_used()  # again under the lock: a run that started meanwhile has written by now
            except FileExistsError:
                self.release()
                raise
        try:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                               f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:200]}\n")
            self._handle.flush()
        except OSError as error:  # a full disk: the lock holds, but there is no room to name its holder
            self.abandon()
            raise OSError(error.errno, error.strerror, str(self.run_dir / LOCK_FILE)) from None
        for name in _SCRATCH_DIRS:
            remove_stale_temps(self.run_dir / name)

    def _refuse_if_used(self) -> None:
        """A fresh run needs a new or empty directory."""
        entries = sorted(p.name for p in self.run_dir.iterdir() if p.name != LOCK_FILE) if self.run_dir.is_dir() else []
        if entries and (self.run_dir / "checkpoints" / "latest").is_file():
            raise FileExistsError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir}, or "
                                  "train into a new directory")
        if entries:
            killed = " (a run killed before its first checkpoint?)" if "config.json" in entries else ""
            raise FileExistsError(f"{self.run_dir} already holds files{killed}: {', '.join(entries[:4])}"
                                  f"{', …' if len(entries) > 4 else ''}; train into a new or empty directory")

    def release(self) -> None:
        if self._handle in _HELD:
            _HELD.remove(self._handle)
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()

    def abandon(self) -> None:
        """Undo a fresh run that failed before its first checkpoint (nothing a resume could use): remove what it
        wrote (the directory, if it made it). A run with a checkpoint, or a resumed one, is kept."""
        if self.resume or (self.run_dir / "checkpoints" / "latest").is_file():
            self.release()
            return
        if self.made is not None:
            self._remove_made()
        else:
            for path in self.run_dir.iterdir():
                if path.name != LOCK_FILE:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            (self.run_dir / LOCK_FILE).unlink(missing_ok=True)
        self.release()

    def _remove_made(self) -> None:
        """Remove the run directory, then each parent this claim made while it is empty (another run may have
        started beside this one meanwhile: its directory stays)."""
        if self.made is None:
            return
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for parent in self.run_dir.parents:
            if parent != self.made and self.made not in parent.parents:
                break
            try:
                parent.rmdir()  # only if empty
            except OSError:
                break


def claim(run_dir: str | Path, resume: bool) -> RunClaim | None:
    """Lock `run_dir` for this run (rank 0 of a launch; other ranks get None)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    return RunClaim(Path(run_dir), resume)


@contextlib.contextmanager
def claimed(run_dir: str | Path, resume: bool) -> Iterator[None]:
    """Hold `claim(run_dir, resume)` for the block: abandoned if the block fails (a run with a checkpoint is kept),
    released at its end."""
    held = claim(run_dir, resume)
    try:
        yield
    except BaseException:
        if held is not None:
            held.abandon()
        raise
    finally:
        if held is not None:
            held.release()
