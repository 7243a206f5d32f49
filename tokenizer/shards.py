"""The token-shard format: its single writer and single reader.

A shard directory holds
- `meta.json`: format version, codebook size, dtype, strides, latent grids (h, w) (several when the clips were
  encoded at several sizes), tokenizer config, counts, shards;
- `index.jsonl`: one line per clip: caption, split, source path, fps, shard number, token offset, (t, h, w);
- `shard_00000.bin` …: the clips' codes back to back, flat, little-endian uint16 (codebook ≤ 65,536) or uint32.
Readers memory-map the shards, and the index as columns (tokenizer/index.py, built when the directory is written),
so a dataset of any size is read without loading it. The directory is built under a temporary name and renamed
when complete. A run in several processes (`tokenizer/encode.py`) writes one `ShardPart` each, which survives a
kill (append-only, fsynced progress), and `merge_parts` publishes them as one directory without copying codes.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from t2v.core.atomic import atomic_directory
from t2v.core.chunks import ROW_CHUNK
from t2v.tokenizer.index import Columns, Field, Rows, open_columns, write_columns_beside

FORMAT_VERSION = 1
SHARD_NAME = "shard_{:05d}.bin"
PROGRESS = "progress.jsonl"  # a part's record of the clips it has done (ShardPart)
SHARD_FIELDS = (Field("caption", "text"), Field("path", "text"), Field("split", "category"), Field("fps", "float"),
                Field("shard", "int32"), Field("offset", "int"), Field("shape", "ints3"), Field("start", "float"),
                Field("end", "float"), Field("duration", "float"), Field("size", "ints2"))


def code_dtype(codebook_size: int) -> np.dtype:
    return np.dtype("<u2") if codebook_size <= 2**16 else np.dtype("<u4")


def _full_meta(codebook_size: int, dtype: np.dtype, clips: int, tokens: int, shards: list[str],
               meta: dict[str, Any]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "codebook_size": codebook_size, "dtype": dtype.str, "num_clips": clips,
            "num_tokens": tokens, "shards": shards, **meta}


def _publish_files(directory: Path, meta: dict[str, Any]) -> None:
    """meta.json, and the columns of the index.jsonl already in `directory` (so no reader builds them)."""
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    write_columns_beside(directory / "index.jsonl", SHARD_FIELDS, iter_shard_rows)


class ShardWriter:
    """Append clips' codes to shards; `close(meta)` writes meta.json and publishes the directory. Index lines are
    written as clips come (nothing per clip is kept in memory)."""

    def __init__(self, out_dir: str | Path, codebook_size: int, max_tokens_per_shard: int = 2**28) -> None:
        self.out_dir = Path(out_dir)
        self.dtype = code_dtype(codebook_size)
        self.codebook_size = codebook_size
        self.max_tokens = max_tokens_per_shard
        self._stack = ExitStack()
        self.tmp = self._stack.enter_context(atomic_directory(self.out_dir))
        self._index = self._stack.enter_context(open(self.tmp / "index.jsonl", "w", encoding="utf-8"))
        self.clips = 0
        self.tokens = 0
        self.shards: list[str] = []
        self._file = None
        self._offset = 0

    def add(self, codes: np.ndarray, row: dict[str, Any]) -> None:
        """Append one clip's codes (t, h, w) with its index fields (caption, split, path, …)."""
        if codes.ndim != 3:
            raise ValueError(f"codes must be (t, h, w), got shape {codes.shape}")
        if self._file is None or self._offset + codes.size > self.max_tokens:
            self._next_shard()
        self._file.write(np.ascontiguousarray(codes, dtype=self.dtype).tobytes())
        line = {**row, "shard": len(self.shards) - 1, "offset": self._offset, "shape": list(codes.shape)}
        self._index.write(json.dumps(line) + "\n")
        self._offset += codes.size
        self.clips += 1
        self.tokens += int(codes.size)

    def _next_shard(self) -> None:
        if self._file is not None:
            self._file.close()
        name = SHARD_NAME.format(len(self.shards))
        self.shards.append(name)
        self._file = open(self.tmp / name, "wb")
        self._offset = 0

    def close(self, meta: dict[str, Any]) -> Path:
        """Finish: write meta.json (and the index's columns) and rename the directory into place."""
        if self._file is not None:
            self._file.close()
        self._index.close()
        _publish_files(self.tmp, _full_meta(self.codebook_size, self.dtype, self.clips, self.tokens, self.shards,
                                            meta))
        self._stack.close()
        return self.out_dir

    def abort(self) -> None:
        """Drop everything written so far (nothing appears at `out_dir`)."""
        if self._file is not None:
            self._file.close()
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class ShardPart:
    """One process's part of a shard directory, written to survive a kill: shard files and `progress.jsonl`, one
    line per clip done, in order ({"clip": n, "row": …} or {"clip": n, "skipped": reason, "path": …}), appended
    and fsynced after the codes it names (`commit`). Opening an existing part drops a torn last line and the
    codes past the last recorded clip, so `done` clips are exactly those recorded."""

    def __init__(self, directory: str | Path, codebook_size: int, max_tokens_per_shard: int = 2**28) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dtype, self.max_tokens = code_dtype(codebook_size), max_tokens_per_shard
        self.progress_path = self.directory / PROGRESS
        self.done, self.clips, last = self._recover()
        self.shard, self._offset = (int(last["shard"]), int(last["offset"]) + math.prod(last["shape"])) if last \
            else (-1, 0)
        for path in self.directory.glob("shard_*.bin"):  # codes written after the last recorded clip
            number = int(path.stem.split("_")[1])
            if number > self.shard:
                path.unlink()
            elif number == self.shard:
                os.truncate(path, self._offset * self.dtype.itemsize)
        self._file = open(self._shard_path(), "ab") if self.shard >= 0 else None
        self._log = open(self.progress_path, "a", encoding="utf-8")
        self._pending: list[str] = []

    def _recover(self) -> tuple[int, list[int], dict | None]:
        """(entries, their clip numbers, the last row entry) of progress.jsonl; a torn last line is cut off."""
        if not self.progress_path.exists():
            return 0, [], None
        count, clips, last, good = 0, [], None, 0
        with open(self.progress_path, "rb") as file:
            for line in file:
                try:
                    entry = json.loads(line) if line.endswith(b"\n") else None
                except ValueError:
                    entry = None
                if not isinstance(entry, dict) or "clip" not in entry:
                    if file.read(1):
                        raise ValueError(f"{self.progress_path}: line {count + 1} is damaged: remove "
                                         f"{self.directory.parent.parent} to encode again")
                    break  # a torn last line: the clip it named is done again
                count, good = count + 1, good + len(line)
                clips.append(int(entry["clip"]))
                if "row" in entry:
                    last = entry["row"]
        os.truncate(self.progress_path, good)
        return count, clips, last

    def _shard_path(self) -> Path:
        return self.directory / SHARD_NAME.format(self.shard)

    def add(self, clip: int, codes: np.ndarray, row: dict[str, Any]) -> None:
        """Write clip `clip`'s codes (t, h, w); recorded as done at the next `commit`."""
        if self._file is None or (self._offset + codes.size > self.max_tokens and self._offset):
            if self._file is not None:
                self._file.close()
            self.shard, self._offset = self.shard + 1, 0
            self._file = open(self._shard_path(), "wb")
        self._file.write(np.ascontiguousarray(codes, dtype=self.dtype).tobytes())
        row = {**row, "shard": self.shard, "offset": self._offset, "shape": list(codes.shape)}
        self._pending.append(json.dumps({"clip": clip, "row": row}))
        self._offset += codes.size

    def skip(self, clip: int, path: str, reason: str) -> None:
        """Record clip `clip` as unreadable (done: a resumed run does not try it again)."""
        self._pending.append(json.dumps({"clip": clip, "skipped": reason, "path": path}))

    def commit(self) -> None:
        """Make the clips added and skipped since the last commit durable: codes first, then their lines."""
        if not self._pending:
            return
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._log.write("".join(line + "\n" for line in self._pending))
        self._log.flush()
        os.fsync(self._log.fileno())
        self.done += len(self._pending)
        self._pending = []

    def close(self) -> None:
        self.commit()
        for file in (self._file, self._log):
            if file is not None:
                file.close()


def part_entries(directory: Path) -> Iterator[dict]:
    """The entries of a finished part's progress.jsonl, in order."""
    with open(directory / PROGRESS, encoding="utf-8") as file:
        for line in file:
            yield json.loads(line)


def _numbered(part: Path, k: int) -> Iterator[tuple[int, int, dict]]:
    return ((entry["clip"], k, entry) for entry in part_entries(part))


def merge_parts(parts: list[Path], out_dir: str | Path, codebook_size: int, meta: dict[str, Any],
                empty: str = "no clips to merge") -> tuple[int, int, dict[str, str]]:
    """Publish the finished `parts` as one shard directory `out_dir`: their shard files linked (copied where links
    are impossible) and renumbered, index.jsonl holding every clip's row in clip order (a k-way merge of the
    parts' progress, streamed). Returns (clips, tokens, skipped path → reason)."""
    dtype, clips, tokens, skipped, shards = code_dtype(codebook_size), 0, 0, {}, []
    with atomic_directory(Path(out_dir)) as tmp:
        first: list[int] = []
        for part in parts:
            first.append(len(shards))
            count = len(list(part.glob("shard_*.bin")))
            for number in range(count):
                name = SHARD_NAME.format(len(shards))
                try:
                    os.link(part / SHARD_NAME.format(number), tmp / name)
                except OSError:
                    shutil.copyfile(part / SHARD_NAME.format(number), tmp / name)
                shards.append(name)
        streams = [_numbered(part, k) for k, part in enumerate(parts)]
        with open(tmp / "index.jsonl", "w", encoding="utf-8") as index:
            for _, k, entry in heapq.merge(*streams, key=lambda item: item[0]):
                if "skipped" in entry:
                    skipped[entry["path"]] = entry["skipped"]
                    continue
                row = entry["row"]
                row["shard"] += first[k]
                index.write(json.dumps(row) + "\n")
                clips += 1
                tokens += math.prod(row["shape"])
        if not clips:
            raise ValueError(empty)
        _publish_files(tmp, _full_meta(codebook_size, dtype, clips, tokens, shards, {**meta, "skipped": len(skipped)}))
    return clips, tokens, skipped


_REENCODE = "re-encode the dataset with `t2v tokenizer encode`"


def _read_json(path: Path, text: str, line: int) -> Any:
    """`text` (line `line` of `path`) parsed as JSON; a damaged line is a one-line ValueError naming the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {line + error.lineno - 1}, column {error.colno}): the file is "
                         f"damaged; {_REENCODE}") from None


def iter_shard_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a shard directory's index.jsonl, one line at a time; a damaged line is a one-line ValueError."""
    with open(path, encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                row = _read_json(path, line, number)
                if not isinstance(row, dict):
                    raise ValueError(f"{path}: line {number} is not a JSON object: the file is damaged; {_REENCODE}")
                yield row


def _check_extents(directory: Path, shards: list[str], columns: Columns, maps: list[np.memmap]) -> None:
    """Every row of index.jsonl names its shard, offset and shape, and lies inside its shard file (a truncated
    shard is found here, not when a clip is read). Column-wise, `ROW_CHUNK` rows at a time."""
    lengths = np.array([len(m) for m in maps] or [0], dtype=np.int64)
    for start in range(0, len(columns), ROW_CHUNK):
        stop = min(start + ROW_CHUNK, len(columns))
        shard, offset = columns.array("shard")[start:stop], columns.array("offset")[start:stop]
        shape = np.asarray(columns.array("shape")[start:stop], dtype=np.int64)
        known = np.ones(stop - start, dtype=bool)
        for name in ("shard", "offset", "shape"):
            known &= columns.has(name)[start:stop].astype(bool)
        known &= (shard >= 0) & (shard < len(maps)) & (offset >= 0) & (shape >= 0).all(axis=1)
        if not known.all():
            number = start + int(np.argmin(known)) + 1
            raise ValueError(f"{directory / 'index.jsonl'}: line {number} lacks a valid shard, offset or shape: the "
                             f"file is damaged; {_REENCODE}")
        ends = offset + shape.prod(axis=1)
        over = ends > lengths[shard]
        if over.any():
            k = int(np.argmax(over))
            raise ValueError(f"{directory / shards[shard[k]]}: holds {lengths[shard[k]]} codes but index.jsonl line "
                             f"{start + k + 1} needs {ends[k]}: the shard is truncated; {_REENCODE}")


def _map(path: Path, dtype: np.dtype) -> np.memmap:
    """Shard file `path` memory-mapped read-only; a missing, empty or cut file is a one-line error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"shard file missing: {path}; {_REENCODE}")
    try:
        return np.memmap(path, dtype=dtype, mode="r")
    except ValueError:  # empty, or cut in the middle of a code
        raise ValueError(f"{path}: empty or cut in the middle of a code: the shard is truncated; {_REENCODE}") from None


@dataclass
class ShardReader:
    """Memory-mapped access to a shard directory: `meta`, the index as columns (`shapes`, `rates`, `select`,
    `caption`; `rows` makes dicts on demand) and `codes(i)` → (t, h, w) array."""

    directory: Path
    meta: dict[str, Any]
    columns: Columns
    _maps: list[np.memmap]
    _rates: np.ndarray | None = None

    @classmethod
    def open(cls, directory: str | Path) -> "ShardReader":
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} is not a token-shard directory (no meta.json): "
                                    "make one with `t2v tokenizer encode`")
        meta = _read_json(meta_path, meta_path.read_text(encoding="utf-8", errors="replace"), 1)
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path}: expected a JSON object: the file is damaged; {_REENCODE}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: shard format {meta.get('format_version')} is not supported "
                             f"(expected {FORMAT_VERSION}); re-encode the dataset")
        missing = [key for key in ("dtype", "shards") if key not in meta]
        if missing:
            raise ValueError(f"{meta_path}: missing key(s) {', '.join(missing)}: the file is incomplete or damaged; "
                             f"{_REENCODE}")
        index_path = directory / "index.jsonl"
        if not index_path.is_file():
            raise FileNotFoundError(f"{directory} has meta.json but no index.jsonl: {_REENCODE}")
        columns = open_columns(index_path, SHARD_FIELDS, iter_shard_rows)
        dtype = np.dtype(meta["dtype"])
        maps = [_map(directory / name, dtype) for name in meta["shards"]]
        _check_extents(directory, meta["shards"], columns, maps)
        return cls(directory, meta, columns, maps)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def rows(self) -> Rows:
        """The index rows as dicts made on demand (prefer the column accessors for many rows)."""
        return Rows(self.columns.row, len(self.columns))

    def select(self, split: str | None) -> np.ndarray:
        """Clip numbers of `split` (every clip when None), ascending."""
        return self.columns.select("split", split)

    def shapes(self) -> np.ndarray:
        """(clips, 3) latent shapes (t, h, w), memory-mapped."""
        return self.columns.array("shape")

    def rates(self) -> np.ndarray:
        """The frame rate of every clip (float64, read-only, computed once): its row's, else the shards'
        (meta.json), NaN when unknown."""
        if self._rates is None:
            fallback = float(self.meta.get("fps") or "nan")
            rates = np.empty(len(self), dtype=np.float64)
            for start in range(0, len(self), ROW_CHUNK):
                stop = min(start + ROW_CHUNK, len(self))
                part = np.where(self.columns.has("fps")[start:stop].astype(bool),
                                self.columns.array("fps")[start:stop], np.nan)
                part[~(part > 0)] = fallback  # a row's 0 or null falls back, as fps()
                rates[start:stop] = part
            rates.setflags(write=False)
            self._rates = rates
        return self._rates

    def caption(self, index: int) -> str:
        return self.columns.text("caption", int(index)) or ""

    def grid(self, index: int) -> tuple[int, int]:
        """The latent grid (h, w) of clip `index`."""
        _, h, w = self.columns.array("shape")[index]
        return int(h), int(w)

    def fps(self, index: int) -> float | None:
        """The frame rate of clip `index`: its row's, else the shards' (meta.json), else None (unknown)."""
        rate = self.columns.array("fps")[index] if self.columns.has("fps")[index] else None
        rate = rate or self.meta.get("fps")
        return float(rate) if rate else None
    def fsq_levels(self) -> list[int] | None:
        """The FSQ levels of the tokenizer that encoded the shards; None for another quantizer or none recorded.
        Reads both layouts of meta.json's tokenizer config (the quantizer as a section, or flat as before)."""
        tokenizer = self.meta.get("tokenizer") or {}
        section = tokenizer.get("quantizer")
        kind, levels = (section.get("kind"), section.get("fsq_levels")) if isinstance(section, dict) else \
            (section, tokenizer.get("fsq_levels"))
        return [int(level) for level in levels] if kind == "fsq" and levels else None

    def codes(self, index: int) -> np.ndarray:
        """The codes of clip `index` as an int64 array (t, h, w)."""
        shape = tuple(int(v) for v in self.columns.array("shape")[index])
        shard, offset = int(self.columns.array("shard")[index]), int(self.columns.array("offset")[index])
        flat = self._maps[shard][offset: offset + math.prod(shape)]
        return np.asarray(flat, dtype=np.int64).reshape(shape)
