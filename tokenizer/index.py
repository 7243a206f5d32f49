"""Indexes as memory-mapped columns: index.jsonl's one reader and writer, and the columnar cache beside it.

Read whole, an index costs one dict per row in every process (≈1.2–1.5 KB a row: 12–15 GB at 10M rows, again in
each DataLoader worker). So an index is read once, in one streaming pass, into columns that every process
memory-maps: the page cache holds them once, however many datasets, workers and ranks open them.

Notable choices:
- `iter_index` is the one parser of a video index.jsonl (`read_index` lists its rows with the paths resolved,
  `write_index` is the one writer); the token shards' index.jsonl has its own fields and parser
  (tokenizer/shards.py) and uses the same columns.
- A column holds one field: text (utf-8 blob + end offsets), float64, int64, a fixed-length int vector, or a
  category (int32 code into a table of names), each with a presence mask; a value that does not fit its column
  (and every field not in the schema) goes, as JSON, into the row's `extra` text, so `row(i)` equals the dict its
  line parses to.
- The cache is `.<index name>.columns/<size>-<mtime_ns>/` beside the index (raw little-endian arrays and a
  columns.json), built in a temporary sibling and renamed into place (core/atomic.py): a changed index (size or
  mtime) gets a new one and older ones are removed; ranks that build at once keep the first that lands. Where
  the index's folder is read-only the cache goes under $XDG_CACHE_HOME/t2v/columns/.
- `open_columns` memoizes one object per (index, size, mtime) in a process and each object its selections
  (`select`): the tokenizer trainer's train, eval and image datasets share one index and one split array.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from t2v.core.atomic import atomic_file, durable_replace, fsync_tree, temp_sibling
from t2v.core.chunks import chunked_where

COLUMNS_VERSION = 2
_BUFFER = 65_536  # values gathered before a column's write
_STALE_TEMP_SECONDS = 3600.0  # a temporary build older than this was left by a killed process


# 1. index.jsonl: the one parser and writer ------------------------------------------------------------------
def iter_index(path: str | os.PathLike) -> Iterator[dict]:
    """The rows of a jsonl index as written (paths not resolved), checked, one line at a time; damaged lines are
    reported together, as a ValueError at the end."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index not found: {path}")
    damaged: list[tuple[int, str]] = []
    number = 0
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                damaged.append((number, error.msg))
                continue
            if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not isinstance(
                    row.get("caption"), str):
                raise ValueError(f"{path}:{number}: each line needs string \"path\" and \"caption\" fields")
            for key in ("start", "end"):
                if key in row and not isinstance(row[key], (int, float)):
                    raise ValueError(f"{path}:{number}: \"{key}\" must be a number of seconds")
            yield row
    if damaged:
        numbers = ", ".join(str(line) for line, _ in damaged[:6]) + (", …" if len(damaged) > 6 else "")
        more = f"; {len(damaged)} of {number} lines are damaged ({numbers})" if len(damaged) > 1 else ""
        raise ValueError(f"{path}:{damaged[0][0]}: not valid JSON ({damaged[0][1]}){more}; each line must be one "
                         "JSON object like {\"path\": \"videos/a.mp4\", \"caption\": \"...\"}")


def read_index(path: str | os.PathLike) -> list[dict]:
    """Rows of a jsonl index, with "path" made absolute (relative to the index's directory). One dict per row:
    for small indexes; a dataset opens `VideoIndex`."""
    base = Path(path).parent
    return [{**row, "path": str(base / row["path"])} for row in iter_index(path)]


def write_index(rows: Iterable[dict], out_index: str | os.PathLike) -> Path:
    """Write `rows` as jsonl to `out_index` atomically (an error while iterating leaves the old file as it was)."""
    out_index = Path(out_index)
    with atomic_file(out_index) as temp, temp.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out_index


# 2. Columns: schema, build, open ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One column: `kind` is "text", "float", "int" (int64), "int32", "ints2"/"ints3" (a list of that many
    int32s) or "category"."""

    name: str
    kind: str

    def fits(self, value: Any) -> bool:
        if self.kind in ("text", "category"):
            return isinstance(value, str)
        if self.kind == "float":
            return type(value) in (int, float)
        if self.kind in ("int", "int32"):
            bound = 2**63 if self.kind == "int" else 2**31
            return type(value) is int and -bound <= value < bound
        length = int(self.kind[-1])
        return isinstance(value, list) and len(value) == length and all(
            type(v) is int and -2**31 <= v < 2**31 for v in value)


VIDEO_FIELDS = (Field("path", "text"), Field("caption", "text"), Field("split", "category"),
                Field("start", "float"), Field("end", "float"), Field("fps", "float"), Field("duration", "float"),
                Field("size", "ints2"))


class _Writer:
    """Appends one column's values to its files, `_BUFFER` at a time."""

    def __init__(self, directory: Path, field: Field) -> None:
        self.field, self.values, self.present = field, [], []
        self.files = {suffix: (directory / f"{field.name}.{suffix}").open("wb") for suffix in self._suffixes()}
        self.names: dict[str, int] = {}
        self.end = 0

    def _suffixes(self) -> tuple[str, ...]:
        return ("blob", "end", "has") if self.field.kind == "text" else ("data", "has")

    def add(self, row: dict, extra: dict) -> None:
        name = self.field.name
        value = row.get(name)
        present = name in row and self.field.fits(value)
        if name in row and not present:
            extra[name] = value
        kind = self.field.kind
        if kind == "text":
            if present:
                data = value.encode("utf-8")
                self.files["blob"].write(data)
                self.end += len(data)
            value = self.end
        elif kind == "category":
            value = self.names.setdefault(value, len(self.names)) if present else -1
        elif not present:
            value = [0] * int(kind[-1]) if kind.startswith("ints") else (math.nan if kind == "float" else 0)
        self.values.append(value)
        self.present.append(present)
        if len(self.values) >= _BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.values:
            key = "end" if self.field.kind == "text" else "data"
            np.asarray(self.values, dtype=_dtype(self.field)).tofile(self.files[key])
            np.asarray(self.present, dtype=np.uint8).tofile(self.files["has"])
        self.values, self.present = [], []

    def close(self) -> None:
        self.flush()
        for file in self.files.values():
            file.close()


def _dtype(field: Field) -> np.dtype:
    return np.dtype("<i4" if field.kind in ("category", "int32") or field.kind.startswith("ints") else
                    "<f8" if field.kind == "float" else "<i8")


def build_columns(rows: Iterable[dict], directory: Path, fields: Sequence[Field], source: dict) -> int:
    """Write the columns of `rows` (streamed) into `directory`; `source` (the index's size and mtime) goes into
    columns.json. Returns the row count."""
    writers = [_Writer(directory, field) for field in fields]
    extra = _Writer(directory, Field("extra", "text"))
    named, count = {field.name for field in fields}, 0
    try:
        for row in rows:
            rest = {key: value for key, value in row.items() if key not in named}
            for writer in writers:
                writer.add(row, rest)
            extra.add({"extra": json.dumps(rest, ensure_ascii=False)} if rest else {}, {})
            count += 1
    finally:
        for writer in [*writers, extra]:
            writer.close()
    names = {w.field.name: list(w.names) for w in writers if w.field.kind == "category"}
    (directory / "columns.json").write_text(json.dumps({"version": COLUMNS_VERSION, "rows": count, "source": source,
                                                        "fields": [[f.name, f.kind] for f in fields],
                                                        "names": names}))
    return count


def _map(path: Path, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only memory map of a column file (an empty array for an empty file, which mmap refuses)."""
    if math.prod(shape) == 0 or path.stat().st_size == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


class Columns:
    """An index's columns, memory-mapped: `row(i)`, `text(name, i)`, `array(name)` / `has(name)`, `select`."""

    def __init__(self, directory: Path) -> None:
        info = json.loads((directory / "columns.json").read_text())
        self.directory, self.count = directory, int(info["rows"])
        self.fields = [Field(name, kind) for name, kind in info["fields"]]
        self.names: dict[str, list[str]] = info["names"]
        self._arrays: dict[str, np.ndarray] = {}
        self._present: dict[str, np.ndarray] = {}
        self._blobs: dict[str, np.ndarray] = {}
        for field in [*self.fields, Field("extra", "text")]:
            self._open(field)
        self._selections: dict[tuple[str, str | None], np.ndarray] = {}

    def _open(self, field: Field) -> None:
        n, path = self.count, self.directory / field.name
        shape = (n, int(field.kind[-1])) if field.kind.startswith("ints") else (n,)
        if field.kind == "text":
            self._arrays[field.name] = _map(path.with_suffix(".end"), "<i8", shape)
            self._blobs[field.name] = _map(path.with_suffix(".blob"), np.uint8,
                                           ((path.with_suffix(".blob")).stat().st_size,))
        else:
            self._arrays[field.name] = _map(path.with_suffix(".data"), _dtype(field), shape)
        self._present[field.name] = _map(path.with_suffix(".has"), np.uint8, (n,))

    def __len__(self) -> int:
        return self.count

    def array(self, name: str) -> np.ndarray:
        """The column `name` (read-only, memory-mapped): floats (NaN where absent), ints, codes (-1 absent)."""
        return self._arrays[name]

    def has(self, name: str) -> np.ndarray:
        """uint8 per row: 1 where the row has `name` in its column's type."""
        return self._present[name]

    def text(self, name: str, i: int) -> str | None:
        """Row i's text in column `name` (None when absent)."""
        if not self._present[name][i]:
            return None
        ends = self._arrays[name]
        start = int(ends[i - 1]) if i else 0
        return bytes(self._blobs[name][start: int(ends[i])]).decode("utf-8")

    def category(self, name: str, i: int) -> str | None:
        code = int(self._arrays[name][i])
        return self.names[name][code] if code >= 0 else None

    def row(self, i: int) -> dict:
        """Row i as the dict its line parses to (field order aside)."""
        i = int(i)
        if not 0 <= i < self.count:
            raise IndexError(f"row {i} of {self.count}")
        row: dict[str, Any] = {}
        for field in self.fields:
            if not self._present[field.name][i]:
                continue
            if field.kind == "text":
                row[field.name] = self.text(field.name, i)
            elif field.kind == "category":
                row[field.name] = self.category(field.name, i)
            elif field.kind.startswith("ints"):
                row[field.name] = [int(v) for v in self._arrays[field.name][i]]
            else:
                row[field.name] = self._arrays[field.name][i].item()
        extra = self.text("extra", i)
        if extra:
            row.update(json.loads(extra))
        return row

    def select(self, name: str, value: str | None) -> np.ndarray:
        """Row numbers whose category `name` is `value` (every row when None), ascending, int32 below 2**31 rows;
        memoized (the same array for every dataset of this process that asks)."""
        key = (name, value)
        if key not in self._selections:
            if value is None:
                chosen = np.arange(self.count, dtype=np.int32 if self.count < 2**31 else np.int64)
            else:
                code = self.names[name].index(value) if value in self.names[name] else -2
                codes = self._arrays[name]
                chosen = chunked_where(self.count, lambda start, stop: codes[start:stop] == code)
            chosen.setflags(write=False)
            self._selections[key] = chosen
        return self._selections[key]


class Rows(Sequence):
    """A sequence of row dicts made on demand: `rows[k]` is `row(ids[k])` (every row when `ids` is None)."""

    def __init__(self, row: Callable[[int], dict], count: int, ids: np.ndarray | None = None) -> None:
        self._row, self._ids, self._count = row, ids, count if ids is None else len(ids)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self._count))]
        k = int(k)
        if k < 0:
            k += self._count
        if not 0 <= k < self._count:
            raise IndexError(f"row {k} of {self._count}")
        return self._row(k if self._ids is None else int(self._ids[k]))

    def __iter__(self) -> Iterator[dict]:
        return (self[k] for k in range(self._count))


_opened: dict[tuple, Columns] = {}


def _source_of(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cache_roots(path: Path) -> list[Path]:
    """Where the columns of index `path` may live: beside it, else under the user's cache folder."""
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "t2v" / "columns"
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    return [path.parent / f".{path.name}.columns", user / f"{path.name}-{digest}"]


def _valid(directory: Path, source: dict, fields: Sequence[Field]) -> bool:
    try:
        info = json.loads((directory / "columns.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == COLUMNS_VERSION and info.get("source") == source and \
        info.get("fields") == [[f.name, f.kind] for f in fields]


def _tidy(root: Path, keep: str) -> None:
    """Remove older columns of the index in `root`, and temporary builds a killed process left."""
    for entry in root.iterdir():
        stale = entry.name.endswith(".tmp") and time.time() - entry.stat().st_mtime > _STALE_TEMP_SECONDS
        if entry.name != keep and (stale or not entry.name.startswith(".")):
            shutil.rmtree(entry, ignore_errors=True)


def _build(root: Path, key: str, rows: Iterable[dict], fields: Sequence[Field], source: dict) -> Path:
    target = root / key
    temp = temp_sibling(target, directory=True)
    try:
        build_columns(rows, temp, fields, source)
        fsync_tree(temp)
        try:
            durable_replace(temp, target)
        except OSError:  # another process published the same columns first: keep theirs
            if not _valid(target, source, fields):
                raise
            shutil.rmtree(temp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _tidy(root, key)
    return target


def open_columns(path: str | os.PathLike, fields: Sequence[Field],
                 parse: Callable[[Path], Iterable[dict]]) -> Columns:
    """The columns of the index at `path` (rows from `parse(path)`), built once per version of the file and
    memoized in this process."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index not found: {path}")
    source = _source_of(path)
    memo = (str(path.resolve()), source["size"], source["mtime_ns"], tuple(fields))
    if memo in _opened:
        return _opened[memo]
    key = f"{source['size']}-{source['mtime_ns']}"
    roots = _cache_roots(path)
    found = next((root / key for root in roots if _valid(root / key, source, fields)), None)
    if found is None:
        for number, root in enumerate(roots):
            try:
                found = _build(root, key, parse(path), fields, source)
                break
            except OSError as error:  # a read-only folder: the next root
                if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS) or number == len(roots) - 1:
                    raise
    columns = Columns(found)
    _opened[memo] = columns
    return columns


def write_columns_beside(path: Path, fields: Sequence[Field], parse: Callable[[Path], Iterable[dict]]) -> None:
    """Build the columns of a just-written index at `path` (in a folder about to be published)."""
    source = _source_of(path)
    root = _cache_roots(path)[0]
    root.mkdir(exist_ok=True)
    _build(root, f"{source['size']}-{source['mtime_ns']}", parse(path), fields, source)


# 3. The video index -----------------------------------------------------------------------------------------
class VideoIndex:
    """A video index.jsonl as columns: `row(i)` (path resolved as `read_index` does), `rows`, `select(split)`,
    `sizes(ids)`, `path(i)`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns = open_columns(self.path, VIDEO_FIELDS, iter_index)
        self.base = self.path.parent

    def __len__(self) -> int:
        return len(self.columns)

    def row(self, i: int) -> dict:
        row = self.columns.row(i)
        row["path"] = str(self.base / row["path"])
        return row

    def path_of(self, i: int) -> str:
        return str(self.base / self.columns.text("path", int(i)))

    def rows(self, ids: np.ndarray | None = None) -> Rows:
        """The rows `ids` (all when None) as a sequence of dicts made on demand."""
        return Rows(self.row, len(self), ids)

    def select(self, split: str | None) -> np.ndarray:
        """Row numbers of `split` (every row when None)."""
        return self.columns.select("split", split)

    def sizes(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) of rows `ids` from their "size" fields ((k, 2) ints) and whether each has one."""
        return np.asarray(self.columns.array("size")[ids]), np.asarray(self.columns.has("size")[ids]).astype(bool)
