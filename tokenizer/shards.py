"""The token-shard format: its single writer and single reader.

A shard directory holds
- `meta.json`: format version, codebook size, dtype, strides, latent grids (h, w) (several when the clips were
  encoded at several sizes), tokenizer config, counts, shards;
- `index.jsonl`: one line per clip: caption, split, source path, fps, shard number, token offset, (t, h, w);
- `shard_00000.bin` …: the clips' codes back to back, flat, little-endian uint16 (codebook ≤ 65,536) or uint32.
Readers memory-map the shards, so a dataset of any size is read without loading it.
The directory is built under a temporary name and renamed when complete.
"""
from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from t2v.core.atomic import atomic_directory

FORMAT_VERSION = 1
SHARD_NAME = "shard_{:05d}.bin"


def code_dtype(codebook_size: int) -> np.dtype:
    return np.dtype("<u2") if codebook_size <= 2**16 else np.dtype("<u4")


class ShardWriter:
    """Append clips' codes to shards; `close(meta)` writes meta.json and index.jsonl and publishes the directory."""

    def __init__(self, out_dir: str | Path, codebook_size: int, max_tokens_per_shard: int = 2**28) -> None:
        self.out_dir = Path(out_dir)
        self.dtype = code_dtype(codebook_size)
        self.codebook_size = codebook_size
        self.max_tokens = max_tokens_per_shard
        self._stack = ExitStack()
        self.tmp = self._stack.enter_context(atomic_directory(self.out_dir))
        self.rows: list[dict[str, Any]] = []
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
        self.rows.append({**row, "shard": len(self.shards) - 1, "offset": self._offset, "shape": list(codes.shape)})
        self._offset += codes.size

    def _next_shard(self) -> None:
        if self._file is not None:
            self._file.close()
        name = SHARD_NAME.format(len(self.shards))
        self.shards.append(name)
        self._file = open(self.tmp / name, "wb")
        self._offset = 0

    def close(self, meta: dict[str, Any]) -> Path:
        """Finish: write meta.json + index.jsonl and rename the directory into place."""
        if self._file is not None:
            self._file.close()
        full_meta = {"format_version": FORMAT_VERSION, "codebook_size": self.codebook_size, "dtype": self.dtype.str,
                     "num_clips": len(self.rows), "num_tokens": sum(int(np.prod(r["shape"])) for r in self.rows),
                     "shards": self.shards, **meta}
        (self.tmp / "meta.json").write_text(json.dumps(full_meta, indent=2))
        (self.tmp / "index.jsonl").write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        self._stack.close()
        return self.out_dir

    def abort(self) -> None:
        """Drop everything written so far (nothing appears at `out_dir`)."""
        if self._file is not None:
            self._file.close()
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


_REENCODE = "re-encode the dataset with `t2v tokenizer encode`"


def _read_json(path: Path, text: str, line: int) -> Any:
    """`text` (line `line` of `path`) parsed as JSON; a damaged line is a one-line ValueError naming the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {line + error.lineno - 1}, column {error.colno}): the file is "
                         f"damaged; {_REENCODE}") from None


def _check_extents(directory: Path, shards: list[str], rows: list[dict[str, Any]], maps: list[np.memmap]) -> None:
    """Every row of index.jsonl names its shard, offset and shape, and lies inside its shard file (a truncated
    shard is found here, not when a clip is read)."""
    for number, row in enumerate(rows, 1):
        try:
            shard, offset, size = int(row["shard"]), int(row["offset"]), math.prod(map(int, row["shape"]))
            length = len(maps[shard])
        except (KeyError, TypeError, ValueError, IndexError):
            raise ValueError(f"{directory / 'index.jsonl'}: line {number} lacks a valid shard, offset or shape: the "
                             f"file is damaged; {_REENCODE}") from None
        if offset + size > length:
            raise ValueError(f"{directory / shards[shard]}: holds {length} codes but index.jsonl line {number} needs "
                             f"{offset + size}: the shard is truncated; {_REENCODE}")


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
    """Memory-mapped access to a shard directory: `meta`, `rows`, and `codes(i)` → (t, h, w) array."""

    directory: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    _maps: list[np.memmap]

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
        lines = index_path.read_text(encoding="utf-8", errors="replace").splitlines()
        rows = [_read_json(index_path, line, number) for number, line in enumerate(lines, 1) if line]
        dtype = np.dtype(meta["dtype"])
        maps = [_map(directory / name, dtype) for name in meta["shards"]]
        _check_extents(directory, meta["shards"], rows, maps)
        return cls(directory, meta, rows, maps)

    def __len__(self) -> int:
        return len(self.rows)

    def grid(self, index: int) -> tuple[int, int]:
        """The latent grid (h, w) of clip `index`."""
        _, h, w = self.rows[index]["shape"]
        return int(h), int(w)

    def fps(self, index: int) -> float | None:
        """The frame rate of clip `index`: its row's, else the shards' (meta.json), else None (unknown)."""
        rate = self.rows[index].get("fps") or self.meta.get("fps")
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
        row = self.rows[index]
        size = int(np.prod(row["shape"]))
        flat = self._maps[row["shard"]][row["offset"]: row["offset"] + size]
        return np.asarray(flat, dtype=np.int64).reshape(row["shape"])
