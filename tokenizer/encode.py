"""Encode a dataset once into token shards, the generator's training input.

Each index row is streamed through the tokenizer's causal caches (any length, bounded memory). A clip keeps
1 + s·k frames: when the last chunk had to be padded, its last latent frame is dropped, so the shards hold only
real content. Unreadable or missing files are skipped with a warning and counted, never fatal.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

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


@torch.no_grad()
def encode_clip(model: VideoTokenizer, path: str, size: tuple[int, int], fps: float | None = None,
                start: float = 0.0, end: float | None = None, max_frames: int | None = None,
                device: str = "cpu") -> torch.Tensor:
    """Codes (t, h, w) of one video file, streamed chunk by chunk."""
    cache, pieces = ConvCache(), []
    for chunk, real in read_tokenizer_chunks(path, size, model.config.temporal_stride,
                                             model.config.chunk_latent_frames, fps, start, end, max_frames):
        codes = model.encode_chunk(to_pixels(chunk, device), cache)[0]  # (t_i, h, w)
        padded = real < len(chunk)
        pieces.append(codes[:-1] if padded and (len(pieces) or len(codes) > 1) else codes)
    if not pieces:
        raise ValueError(f"no frames decoded from {path}")
    return torch.cat(pieces).cpu()


def encode_dataset(model: VideoTokenizer, index_path: str | Path, out_dir: str | Path, size: tuple[int, int],
                   fps: float | None = None, max_frames: int | None = None, split: str | None = None,
                   device: str = "cpu") -> EncodeReport:
    """Encode every row of `index_path` (optionally one split) into a new shard directory `out_dir`."""
    model.latent_shape(1, *size)
    model = model.to(device).eval()
    rows = [row for row in read_index(index_path) if split is None or row.get("split") == split]
    if not rows:
        raise ValueError(f"{index_path} has no rows{f' in split {split!r}' if split else ''} to encode")
    writer = ShardWriter(out_dir, model.codebook_size)
    skipped: dict[str, str] = {}
    try:
        for row in tqdm(rows, desc="encode", unit="clip", dynamic_ncols=True):
            try:
                codes = encode_clip(model, row["path"], size, fps, row.get("start", 0.0), row.get("end"),
                                    max_frames, device)
            except (ValueError, FileNotFoundError) as error:
                skipped[row["path"]] = str(error)
                warnings.warn(f"skipping {row['path']}: {error}", stacklevel=2)
                continue
            extra = {key: value for key, value in row.items() if key not in ("shard", "offset", "shape")}
            writer.add(codes.numpy(), extra)
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
