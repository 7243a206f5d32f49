"""Encode a dataset once into token shards, the generator's training input.

Each index row is streamed through the tokenizer's causal caches (any length, bounded memory); clips of a few
chunks are batched. A clip keeps 1 + s·k frames: when the last chunk had to be padded, its last latent frame
is dropped, so the shards hold only real content. Unreadable or missing files are skipped with a warning and counted, never fatal.

Several sizes (`buckets`): each clip is encoded at the size of its bucket (nearest aspect ratio, as the tokenizer's
bucketed training data), so the shards hold several latent grids (meta.json's `latent_grids`; each row's shape).
Each row records its clip's frame rate (`fps`: the resampled rate, else the index row's, else the file's).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from t2v.core.config_io import to_dict
from t2v.tokenizer.data import nearest_bucket, read_index, row_size
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.shards import ShardWriter
from t2v.tokenizer.frames import read_tokenizer_chunks, to_pixels
from t2v.tokenizer.video_io import probe


@dataclass
class EncodeReport:
    out_dir: Path
    clips: int
    tokens: int
    skipped: dict[str, str] = field(default_factory=dict)  # path → reason

    def summary(self) -> str:
        text = f"encoded {self.clips} clips, {self.tokens} tokens → {self.out_dir}"
        return text + (f"; skipped {len(self.skipped)} unreadable files" if self.skipped else "")


def _trim(codes: torch.Tensor, padded: bool, first: bool) -> torch.Tensor:
    """Drop the last latent frame of a chunk (B, t, h, w) that was padded, unless it is a clip's only one."""
    return codes[:, :-1] if padded and (not first or codes.shape[1] > 1) else codes


@torch.no_grad()
def encode_chunks(model: VideoTokenizer, chunks: Iterable[tuple[np.ndarray, int]],
                  device: str = "cpu") -> torch.Tensor:
    """Codes (t, h, w) of one clip given as (chunk, real frame count) pairs, through the causal cache."""
    cache, pieces = ConvCache(), []
    for chunk, real in chunks:
        codes = model.encode_chunk(to_pixels(chunk, device), cache)  # (1, t_i, h, w)
        pieces.append(_trim(codes, real < len(chunk), first=not pieces)[0])
    if not pieces:
        raise ValueError("no frames to encode")
    return torch.cat(pieces).cpu()


Chunks = list[tuple[np.ndarray, int]]  # (frames, real frame count) per tokenizer chunk of one clip


class _ClipBatch:
    """Clips of at most a few chunks, gathered while their chunk sizes agree and encoded as one batch through a
    shared causal cache: batch-1 convolutions cost several times more per clip on a CPU."""

    def __init__(self, model: VideoTokenizer, size: int, device: str) -> None:
        self.model, self.size, self.device = model, size, device
        self.rows: list[dict] = []
        self.clips: list[Chunks] = []

    @staticmethod
    def key(chunks: Chunks) -> list[tuple[tuple[int, ...], int]]:
        return [(frames.shape, real) for frames, real in chunks]  # (T, H, W, 3) and real frames of each chunk

    def fits(self, chunks: Chunks) -> bool:
        return not self.rows or (self.key(self.clips[0]) == self.key(chunks) and len(self.rows) < self.size)

    def add(self, row: dict, chunks: Chunks) -> None:
        self.rows.append(row)
        self.clips.append(chunks)

    @torch.no_grad()
    def flush(self) -> Iterator[tuple[dict, torch.Tensor]]:
        """Encode the gathered clips and yield (row, codes (t, h, w)) in the order they were added."""
        if not self.rows:
            return
        cache, pieces = ConvCache(), []
        for index, (shape, real) in enumerate(self.key(self.clips[0])):
            video = torch.cat([to_pixels(clip[index][0], self.device) for clip in self.clips])  # (B, 3, T, H, W)
            codes = self.model.encode_chunk(video, cache)  # (B, t_i, h, w)
            pieces.append(_trim(codes, real < shape[0], first=index == 0))
        rows, self.rows, self.clips = self.rows, [], []
        yield from zip(rows, torch.cat(pieces, dim=1).cpu())


def clip_fps(row: dict, fps: float | None) -> float:
    """The frame rate a row's clip is encoded at: `fps` when resampling, else the row's, else the file's."""
    return float(fps or row.get("fps") or probe(row["path"]).fps)


def encode_dataset(model: VideoTokenizer, index_path: str | Path, out_dir: str | Path, size: tuple[int, int],
                   fps: float | None = None, max_frames: int | None = None, split: str | None = None,
                   device: str = "cpu", batch_size: int = 16, batch_chunks: int = 8,
                   buckets: Sequence[tuple[int, int]] = ()) -> EncodeReport:
    """Encode every row of `index_path` (optionally one split) into a new shard directory `out_dir`, at `size`
    (H, W), or, given `buckets`, at the size of each row's bucket (nearest aspect ratio).

    Rows keep their order. Clips of at most `batch_chunks` tokenizer chunks (129 frames with 4 latent frames a
    chunk) are encoded `batch_size` at a time (the same codes: a clip of a batch does not see its neighbours);
    longer ones are streamed alone through the causal cache, in bounded memory.
    """
    sizes = [tuple(bucket) for bucket in buckets] or [tuple(size)]
    for bucket in sizes:
        model.latent_shape(1, *bucket)
    model = model.to(device).eval()
    rows = [row for row in read_index(index_path) if split is None or row.get("split") == split]
    if not rows:
        raise ValueError(f"{index_path} has no rows{f' in split {split!r}' if split else ''} to encode")
    writer = ShardWriter(out_dir, model.codebook_size)
    skipped: dict[str, str] = {}
    batch = _ClipBatch(model, batch_size, device)

    def write(row: dict, codes: torch.Tensor) -> None:
        extra = {key: value for key, value in row.items() if key not in ("shard", "offset", "shape")}
        writer.add(codes.numpy(), extra)

    try:
        for row in tqdm(rows, desc="encode", unit="clip", dynamic_ncols=True):
            try:
                row = {**row, "fps": clip_fps(row, fps)}
                clip_size = sizes[nearest_bucket(row_size(row), sizes)] if len(sizes) > 1 else sizes[0]
                chunks = read_tokenizer_chunks(row["path"], clip_size, model.config.temporal_stride,
                                               model.config.chunk_latent_frames, fps, row.get("start", 0.0),
                                               row.get("end"), max_frames)
                head = list(itertools.islice(chunks, batch_chunks + 1))
                if not head:
                    raise ValueError(f"no frames decoded from {row['path']}")
                short = len(head) <= batch_chunks
                if short and batch.fits(head):
                    batch.add(row, head)
                    continue
                codes = None if short else encode_chunks(model, itertools.chain(head, chunks), device)
            except (ValueError, FileNotFoundError) as error:
                skipped[row["path"]] = str(error)
                warnings.warn(f"skipping {row['path']}: {error}", stacklevel=2)
                continue
            for done in batch.flush():
                write(*done)
            if codes is None:
                batch.add(row, head)
            else:
                write(row, codes)
        for done in batch.flush():
            write(*done)
    except BaseException:
        writer.abort()
        raise
    return _close(writer, model, sizes, fps, str(index_path), skipped, empty=f"none of the {len(rows)} files in "
                  f"{index_path} could be read: {next(iter(skipped.values()), '')}")


def _close(writer: ShardWriter, model: VideoTokenizer, sizes: Sequence[tuple[int, int]], fps: float | None,
           source: str, skipped: dict[str, str], empty: str) -> EncodeReport:
    """Publish the shards with their meta.json: strides, latent grids, sizes, rate, source and tokenizer config;
    with no clip written, drop them and raise ValueError(`empty`)."""
    if not writer.clips:
        writer.abort()
        raise ValueError(empty)
    config = model.config
    grids = [[h // config.spatial_stride, w // config.spatial_stride] for h, w in sizes]
    one = {"latent_grid": grids[0], "size": list(sizes[0])} if len(sizes) == 1 else {}  # the single-size keys
    meta = {"temporal_stride": config.temporal_stride, "spatial_stride": config.spatial_stride, **one,
            "latent_grids": grids, "sizes": [list(bucket) for bucket in sizes], "fps": fps,
            "source_index": source, "skipped": len(skipped), "tokenizer": to_dict(config)}
    writer.close(meta)
    return EncodeReport(Path(writer.out_dir), clips=writer.clips, tokens=writer.tokens, skipped=skipped)


@torch.no_grad()
def encode_clips(model: VideoTokenizer, clips: Iterable[tuple[dict, np.ndarray]], out_dir: str | Path,
                 source: str, total: int | None = None, device: str = "cpu", batch_size: int = 32) -> EncodeReport:
    """Encode clips given in memory, (index fields, uint8 frames (T, H, W, 3)) pairs of 1 + s·k frames, into a
    new shard directory `out_dir` (a dataset drawn by a program needs no video files); `source` names where they
    came from in meta.json. Consecutive clips of one shape are encoded `batch_size` at a time; rows keep their
    order and each records its `fps`."""
    model = model.to(device).eval()
    writer = ShardWriter(out_dir, model.codebook_size)
    sizes: list[tuple[int, int]] = []
    rates: set[float] = set()
    batch: list[tuple[dict, np.ndarray]] = []

    def flush() -> None:
        video = torch.cat([to_pixels(frames, device) for _, frames in batch])  # (B, 3, T, H, W)
        for (row, _), codes in zip(batch, model.encode(video).cpu()):
            writer.add(codes.numpy(), row)
        batch.clear()

    try:
        for row, frames in tqdm(clips, desc="encode", unit="clip", total=total, dynamic_ncols=True):
            size = tuple(frames.shape[1:3])
            if size not in sizes:
                sizes.append(size)
            rates.add(float(row["fps"]))
            if batch and (batch[0][1].shape != frames.shape or len(batch) == batch_size):
                flush()
            batch.append((row, frames))
        if batch:
            flush()
    except BaseException:
        writer.abort()
        raise
    return _close(writer, model, sizes, rates.pop() if len(rates) == 1 else None, source, {},
                  empty=f"no clips to encode from {source}")
