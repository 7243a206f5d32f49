"""Encode a dataset once into token shards, the generator's training input.

Each index row is streamed through the tokenizer's causal caches (any length, bounded memory); clips that fit in
one chunk are batched. A clip keeps 1 + s·k frames: when the last chunk had to be padded, its last latent frame
is dropped, so the shards hold only real content. Unreadable or missing files are skipped with a warning and counted, never fatal.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from t2v.tokenizer.data import read_index
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.shards import ShardWriter
from t2v.tokenizer.streaming import read_tokenizer_chunks, to_pixels


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


class _ShortClipBatch:
    """Clips that fit in one tokenizer chunk, gathered by (frames, real frames) and encoded as one batch: batch-1
    convolutions cost about 6× more per clip on a CPU."""

    def __init__(self, model: VideoTokenizer, size: int, device: str) -> None:
        self.model, self.size, self.device = model, size, device
        self.rows: list[dict] = []
        self.chunks: list[np.ndarray] = []
        self.key: tuple[int, int] | None = None

    def fits(self, chunk: np.ndarray, real: int) -> bool:
        return not self.rows or (self.key == (len(chunk), real) and len(self.rows) < self.size)

    def add(self, row: dict, chunk: np.ndarray, real: int) -> None:
        self.rows.append(row)
        self.chunks.append(chunk)
        self.key = (len(chunk), real)

    @torch.no_grad()
    def flush(self) -> Iterator[tuple[dict, torch.Tensor]]:
        """Encode the gathered clips and yield (row, codes (t, h, w)) in the order they were added."""
        if not self.rows:
            return
        video = torch.cat([to_pixels(chunk, self.device) for chunk in self.chunks])  # (B, 3, T, H, W)
        codes = self.model.encode_chunk(video, ConvCache())  # (B, t, h, w)
        codes = _trim(codes, self.key[1] < self.key[0], first=True).cpu()
        rows, self.rows, self.chunks, self.key = self.rows, [], [], None
        yield from zip(rows, codes)


def encode_dataset(model: VideoTokenizer, index_path: str | Path, out_dir: str | Path, size: tuple[int, int],
                   fps: float | None = None, max_frames: int | None = None, split: str | None = None,
                   device: str = "cpu", batch_size: int = 16) -> EncodeReport:
    """Encode every row of `index_path` (optionally one split) into a new shard directory `out_dir`.

    Rows keep their order. A clip longer than one tokenizer chunk is streamed through the causal cache; shorter
    ones are encoded `batch_size` at a time (the same codes: a chunk of a batch does not see its neighbours).
    """
    model.latent_shape(1, *size)
    model = model.to(device).eval()
    rows = [row for row in read_index(index_path) if split is None or row.get("split") == split]
    if not rows:
        raise ValueError(f"{index_path} has no rows{f' in split {split!r}' if split else ''} to encode")
    writer = ShardWriter(out_dir, model.codebook_size)
    skipped: dict[str, str] = {}
    batch = _ShortClipBatch(model, batch_size, device)

    def write(row: dict, codes: torch.Tensor) -> None:
        extra = {key: value for key, value in row.items() if key not in ("shard", "offset", "shape")}
        writer.add(codes.numpy(), extra)

    try:
        for row in tqdm(rows, desc="encode", unit="clip", dynamic_ncols=True):
            try:
                chunks = read_tokenizer_chunks(row["path"], size, model.config.temporal_stride,
                                               model.config.chunk_latent_frames, fps, row.get("start", 0.0),
                                               row.get("end"), max_frames)
                head = list(itertools.islice(chunks, 2))
                if not head:
                    raise ValueError(f"no frames decoded from {row['path']}")
                if len(head) == 1 and batch.fits(*head[0]):
                    batch.add(row, *head[0])
                    continue
                codes = encode_chunks(model, itertools.chain(head, chunks), device) if len(head) > 1 else None
            except (ValueError, FileNotFoundError) as error:
                skipped[row["path"]] = str(error)
                warnings.warn(f"skipping {row['path']}: {error}", stacklevel=2)
                continue
            for done in batch.flush():
                write(*done)
            if codes is None:
                batch.add(row, *head[0])
            else:
                write(row, codes)
        for done in batch.flush():
            write(*done)
    except BaseException:
        writer.abort()
        raise
    if not writer.rows:
        writer.abort()
        raise ValueError(f"none of the {len(rows)} files in {index_path} could be read: {next(iter(skipped.values()))}")
    config = model.config
    meta = {"temporal_stride": config.temporal_stride, "spatial_stride": config.spatial_stride,
            "latent_grid": [size[0] // config.spatial_stride, size[1] // config.spatial_stride],
            "size": list(size), "fps": fps, "source_index": str(index_path), "skipped": len(skipped),
            "tokenizer": {key: getattr(config, key) for key in config.__dataclass_fields__}}
    writer.close(meta)
    return EncodeReport(Path(out_dir), clips=len(writer.rows),
                        tokens=sum(math.prod(r["shape"]) for r in writer.rows), skipped=skipped)
