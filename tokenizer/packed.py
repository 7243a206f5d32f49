"""Packed clips: an index's video files in tar shards (`t2v data pack`), the format's one writer and reader.

A packed directory holds
- `shard_00000.tar` …: for each clip `<key>.<ext>` (the video file's bytes) then `<key>.json` (caption, split,
  fps, size, duration, start, end, the source path): webdataset's layout (a key is the row's 9-digit number), a
  shard closed before it would pass `max_shard_bytes`;
- `index.jsonl`: a video index (tokenizer/index.py) of the packed clips whose "path" is the shard and "member",
  "offset", "length" locate the video member, so a ClipDataset reads a packed directory as it reads any index;
- `packed.json`: version, shards, clip count, skipped files.
The directory is written under a temporary name and renamed when complete (core/atomic.py).

Why the stdlib tarfile and not the `webdataset` package (1.0.2 installs, works offline and reads these shards:
tests/test_packed.py): the map-style index needs each member's byte offset, which tarfile gives while writing;
the stream (tokenizer/data.py `StreamingClips`) is split sample by sample over ranks × workers when there are
fewer shards than readers, where webdataset's splitters hand out whole shards; and corrupt samples are counted,
which its error handlers do not do.

A member is decoded from a temporary copy (in /dev/shm where there is one): tokenizer/video_io.py, the one user of
PyAV, reads paths.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from t2v.core.atomic import atomic_directory, atomic_write_text
from t2v.tokenizer.index import VideoIndex, write_index

PACKED_VERSION = 1
PACKED_FILE = "packed.json"
SHARD_NAME = "shard_{:05d}.tar"
MAX_SHARD_BYTES = 1 << 30  # webdataset's usual shard size: large sequential reads, few files
_BLOCK = tarfile.BLOCKSIZE


@dataclass
class PackReport:
    out_dir: Path
    clips: int
    shards: int
    bytes: int
    skipped: dict[str, str] = field(default_factory=dict)  # path → reason

    def summary(self) -> str:
        text = f"packed {self.clips} clips into {self.shards} shards ({self.bytes / 1e6:,.1f} MB) → {self.out_dir}"
        return text + (f"; skipped {len(self.skipped)} files" if self.skipped else "")


class _ShardWriter:
    """Tar shards of at most `max_bytes` each (a clip larger than that gets a shard of its own)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory, self.max_bytes = directory, max_bytes
        self.names: list[str] = []
        self.tar: tarfile.TarFile | None = None
        self.total = 0

    def _member(self, name: str, data: bytes) -> int:
        """Append member `name`; the byte offset of its data in the shard."""
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o444, 0  # the same bytes for the same clips
        self.tar.addfile(info, io.BytesIO(data))
        return self.tar.offset - -(-len(data) // _BLOCK) * _BLOCK

    def add(self, key: str, suffix: str, video: bytes, fields: dict) -> dict:
        """Write one clip; its index fields: path (the shard's name), member, offset, length."""
        meta = json.dumps(fields, ensure_ascii=False).encode("utf-8")
        size = len(video) + len(meta) + 4 * _BLOCK
        if self.tar is None or (self.tar.offset + size > self.max_bytes and self.tar.offset > 0):
            self._next()
        member = f"{key}.{suffix}"
        offset = self._member(member, video)
        self._member(f"{key}.json", meta)
        self.tar.members.clear()  # tarfile keeps every TarInfo written; nothing here needs them
        return {"path": self.names[-1], "member": member, "offset": offset, "length": len(video)}

    def _next(self) -> None:
        self.close()
        self.names.append(SHARD_NAME.format(len(self.names)))
        self.tar = tarfile.open(self.directory / self.names[-1], "w", format=tarfile.USTAR_FORMAT)

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.total += (self.directory / self.names[-1]).stat().st_size
            self.tar = None


def pack(index_path: str | os.PathLike, out_dir: str | os.PathLike, split: str | None = None,
         max_shard_bytes: int = MAX_SHARD_BYTES) -> PackReport:
    """Copy the video files of `index_path`'s rows (of `split`; all when None) into tar shards in the new packed
    directory `out_dir`. Missing files and folders of frames are skipped and reported."""
    out_dir = Path(out_dir)
    index = VideoIndex(index_path)
    ids = index.select(split)
    if not len(ids):
        raise ValueError(f"{index_path} has no rows{f' of split {split!r}' if split else ''} to pack")
    skipped: dict[str, str] = {}
    with atomic_directory(out_dir) as temp:
        shards = _ShardWriter(temp, max_shard_bytes)

        def rows() -> Iterator[dict]:
            for number in ids:
                row = index.row(number)
                source = Path(row["path"])
                if source.is_dir():
                    skipped[row["path"]] = "a folder of frames: only video files are packed"
                    continue
                try:
                    video = source.read_bytes()
                except OSError as error:
                    skipped[row["path"]] = f"missing or unreadable: {error.strerror or error}"
                    continue
                fields = {key: value for key, value in row.items() if key != "path"}
                fields["source"] = row["path"]
                where = shards.add(f"{int(number):09d}", source.suffix.lstrip(".").lower() or "bin", video, fields)
                yield {**fields, **where}

        write_index(rows(), temp / "index.jsonl")
        shards.close()
        clips = sum(1 for _ in VideoIndex(temp / "index.jsonl").select(None))
        if not clips:
            raise ValueError(f"none of the {len(ids)} files of {index_path} could be packed: "
                             f"{next(iter(skipped.values()), '')}")
        atomic_write_text(temp / PACKED_FILE, json.dumps({"version": PACKED_VERSION, "shards": shards.names,
                                                          "clips": clips, "source_index": str(index_path),
                                                          "skipped": len(skipped)}, indent=2))
    return PackReport(out_dir, clips, len(shards.names), shards.total, skipped)


# Reading ------------------------------------------------------------------------------------------------------
def packed_info(directory: str | os.PathLike) -> dict:
    """packed.json of a packed directory; a one-line error for any other folder."""
    path = Path(directory) / PACKED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is a folder, not an index.jsonl or a packed directory (no "
                                f"{PACKED_FILE}): make one with `t2v data pack INDEX {directory}`")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not valid JSON: the file is damaged; pack the index again") from None
    if not isinstance(info, dict) or info.get("version") != PACKED_VERSION or not isinstance(info.get("shards"), list):
        raise ValueError(f"{path}: not a packed directory of version {PACKED_VERSION}; pack the index again")
    return info


def open_packed_index(directory: str | os.PathLike) -> VideoIndex:
    """The index of a packed directory (rows that name their tar members)."""
    packed_info(directory)
    return VideoIndex(Path(directory) / "index.jsonl")


def clip_name(row: dict) -> str:
    """How a clip is named in warnings and skip records: its file, or shard:member."""
    return f"{row['path']}:{row['member']}" if "member" in row else row["path"]


def _scratch() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def bytes_file(data: bytes, suffix: str) -> Iterator[str]:
    """A temporary file holding `data` (removed afterwards)."""
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="t2v-clip-", dir=_scratch())
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        yield name
    finally:
        os.unlink(name)


@contextlib.contextmanager
def clip_file(row: dict) -> Iterator[str]:
    """A path to the row's video: its file, or a temporary copy of its tar member."""
    if "member" not in row:
        yield row["path"]
        return
    try:
        offset, length = int(row["offset"]), int(row["length"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{clip_name(row)}: the packed index row lacks a valid offset or length") from None
    with open(row["path"], "rb") as file:  # a missing shard: FileNotFoundError, skipped like a missing file
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise ValueError(f"{clip_name(row)}: the shard is truncated ({len(data)} of {length} bytes)")
    with bytes_file(data, Path(row["member"]).suffix) as path:
        yield path


@dataclass
class Sample:
    """One clip of a shard as streamed: its key, members (suffix → bytes), or why it cannot be read."""

    key: str
    members: dict[str, bytes]
    error: str | None = None


def iter_samples(path: str | os.PathLike) -> Iterator[Sample]:
    """The samples of a tar shard in order (members grouped by key, the name up to its first dot); a shard that
    breaks off ends with one Sample naming the damage."""
    key, members = None, {}
    try:
        with tarfile.open(path, "r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.rsplit("/", 1)[-1]
                stem, _, suffix = name.partition(".")
                if stem != key and key is not None:
                    yield Sample(key, members)
                    members = {}
                key = stem
                members[suffix] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        yield Sample(key or "?", members, f"{path}: the shard is damaged after member {key!r} ({error})")
        return
    if key is not None:
        yield Sample(key, members)


def reader_shares(shards: int, reader: int, readers: int) -> list[tuple[int, int, int]]:
    """What reader `reader` of `readers` streams: (shard, modulus, remainder) = the samples k of that shard with
    k % modulus == remainder. With at least as many shards as readers, whole shards round robin; with fewer,
    each shard's readers take every n-th sample: every sample is read by exactly one reader."""
    if readers <= shards:
        return [(shard, 1, 0) for shard in range(reader, shards, readers)]
    shard = reader % shards
    group = len(range(shard, readers, shards))  # readers of this shard
    return [(shard, group, reader // shards)]


def decode_json(sample: Sample) -> dict:
    """The clip's fields from its json member; ValueError when missing or damaged."""
    if "json" not in sample.members:
        raise ValueError(f"sample {sample.key}: no json member")
    try:
        fields = json.loads(sample.members["json"].decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"sample {sample.key}: damaged json member ({error})") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("caption"), str):
        raise ValueError(f"sample {sample.key}: the json member has no caption")
    return fields


def video_member(sample: Sample) -> tuple[str, bytes]:
    """(suffix, bytes) of the sample's video member; ValueError when it has none."""
    videos = [(suffix, data) for suffix, data in sample.members.items() if suffix != "json"]
    if len(videos) != 1:
        raise ValueError(f"sample {sample.key}: expected one video member, found {len(videos)}")
    return videos[0]


def key_number(key: str) -> int:
    """A sample's key as a number (the packed row's), for its random generator; any other key hashes."""
    return int(key) if key.isdigit() else int(np.frombuffer(key.encode()[:8].ljust(8, b"\0"), "<u8")[0] >> 1)
