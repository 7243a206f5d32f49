"""Encode a dataset once into token shards, the generator's training input: in one process or several, resumable.

Each index row is streamed through the tokenizer's causal caches (any length, bounded memory); clips of a few
chunks are batched. A clip keeps 1 + s·k frames: when the last chunk had to be padded, its last latent frame
is dropped, so the shards hold only real content. Unreadable or missing files are skipped with a warning and
counted, never fatal.

Several sizes (`buckets`): each clip is encoded at the size of its bucket (nearest aspect ratio, as the tokenizer's
bucketed training data), so the shards hold several latent grids (meta.json's `latent_grids`; each row's shape).
Each row records its clip's frame rate (`fps`: the resampled rate, else the index row's, else the file's).

At scale (`encode_dataset`):
- Rank k of W (torchrun's RANK / WORLD_SIZE) takes every W-th clip of the index (k, k + W, …) and writes its own
  part, `OUT_DIR.partial/parts/rank_k/` (tokenizer/shards.py `ShardPart`: shard files and an append-only,
  fsynced progress.jsonl naming each clip done, written after its codes); a finished part gets `done.json`.
  Rank 0 waits for every part, then merges them into OUT_DIR (codes linked, not copied; rows in index order)
  and removes OUT_DIR.partial. The ranks share files only: no process group.
- Videos are decoded ahead by `workers` DataLoader processes (worker w of a rank takes its clips w, w + n, …,
  so they arrive in order); a clip longer than `batch_chunks` chunks is streamed in the main process instead
  (its frames are never all in memory).
- Resume is explicit: a killed or failed run leaves OUT_DIR.partial/; the same command with `resume=True`
  (`--resume`) continues it, each part from the clip after its last recorded one (codes past it are cut off),
  so every clip is encoded exactly once; `run.json` holds the inputs (index size and mtime, tokenizer weights,
  sizes, rate, frames, split, world size, dtype) and a resume with others is refused. `resume=True` with no
  partial run starts one, so a scheduler may always pass it.
- One process is rank 0 of 1: the same parts, progress and merge, so its output is what several ranks give.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from t2v.core.atomic import atomic_write_text
from t2v.core.step_loader import worker_context
from t2v.core.config_io import to_dict
from t2v.tokenizer.data import init_worker, nearest_bucket, open_video_index, row_size
from t2v.tokenizer.index import VideoIndex
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.packed import clip_file, clip_name
from t2v.tokenizer.shards import ShardPart, ShardWriter, merge_parts, part_entries
from t2v.tokenizer.frames import read_tokenizer_chunks, to_pixels
from t2v.tokenizer.video_io import probe

_WAIT_SECONDS = 1.0  # how often rank 0 looks for the other parts' done.json


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
def encode_chunks(model: VideoTokenizer, chunks: Iterable[tuple[np.ndarray, int]], device: str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Codes (t, h, w) of one clip given as (chunk, real frame count) pairs, through the causal cache."""
    cache, pieces = ConvCache(), []
    for chunk, real in chunks:
        codes = model.encode_chunk(to_pixels(chunk, device).to(dtype), cache)  # (1, t_i, h, w)
        pieces.append(_trim(codes, real < len(chunk), first=not pieces)[0])
    if not pieces:
        raise ValueError("no frames to encode")
    return torch.cat(pieces).cpu()


Chunks = list[tuple[np.ndarray, int]]  # (frames, real frame count) per tokenizer chunk of one clip


class _ClipBatch:
    """Clips of at most a few chunks, gathered while their chunk sizes agree and encoded as one batch through a
    shared causal cache: batch-1 convolutions cost several times more per clip on a CPU."""

    def __init__(self, model: VideoTokenizer, size: int, device: str, dtype: torch.dtype = torch.float32) -> None:
        self.model, self.size, self.device, self.dtype = model, size, device, dtype
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
            video = torch.cat([to_pixels(clip[index][0], self.device) for clip in self.clips]).to(self.dtype)
            codes = self.model.encode_chunk(video, cache)  # (B, t_i, h, w)
            pieces.append(_trim(codes, real < shape[0], first=index == 0))
        rows, self.rows, self.clips = self.rows, [], []
        yield from zip(rows, torch.cat(pieces, dim=1).cpu())


def clip_fps(row: dict, fps: float | None) -> float:
    """The frame rate a row's clip is encoded at: `fps` when resampling, else the row's, else the file's."""
    if fps or row.get("fps"):
        return float(fps or row["fps"])
    with clip_file(row) as path:
        return float(probe(path).fps)


class _Clips(torch.utils.data.IterableDataset):
    """Items for the clips `ids` of `index`, decoded in DataLoader workers (worker w of n takes positions w, w + n,
    …, so the loader hands them out in order): {"clip", "row", "chunks" (None for a long clip, which the main
    process streams), "error"}."""

    def __init__(self, index: VideoIndex, ids: np.ndarray, sizes: Sequence[tuple[int, int]], fps: float | None,
                 max_frames: int | None, stride: int, chunk_latents: int, batch_chunks: int) -> None:
        self.index, self.ids, self.sizes, self.fps, self.max_frames = index, ids, sizes, fps, max_frames
        self.stride, self.chunk_latents, self.batch_chunks = stride, chunk_latents, batch_chunks

    def chunks(self, row: dict) -> Iterator[tuple[np.ndarray, int]]:
        size = self.sizes[nearest_bucket(row_size(row), self.sizes)] if len(self.sizes) > 1 else self.sizes[0]
        with clip_file(row) as path:  # a packed row's member: a temporary copy while the chunks are read
            yield from read_tokenizer_chunks(path, size, self.stride, self.chunk_latents, self.fps,
                                             row.get("start", 0.0), row.get("end"), self.max_frames)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for clip in self.ids[worker::workers]:
            row = self.index.row(clip)
            item = {"clip": int(clip), "row": row, "chunks": None, "error": None}
            try:
                row["fps"] = clip_fps(row, self.fps)
                head = list(itertools.islice(self.chunks(row), self.batch_chunks + 1))
                if not head:
                    raise ValueError(f"no frames decoded from {row['path']}")
                item["chunks"] = head if len(head) <= self.batch_chunks else None
            except (ValueError, FileNotFoundError) as error:
                item["error"] = str(error)
            yield item


def _same(item):
    return item


def _fingerprint(model: VideoTokenizer) -> str:
    """A hash of the weights: a resume with another tokenizer is refused."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def partial_dir(out_dir: str | Path) -> Path:
    """Where an unfinished encode of `out_dir` keeps its parts."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".partial")


def _start(work: Path, out_dir: Path, settings: dict, rank: int, resume: bool) -> None:
    """Rank 0 makes or checks the partial run; the other ranks wait for its run.json and check it."""
    run_file = work / "run.json"
    if rank == 0:
        if out_dir.exists():
            raise FileExistsError(f"{out_dir} already exists: choose a new output directory or remove it")
        if run_file.is_file() and not resume:
            raise FileExistsError(f"{work} holds a partial encode of {out_dir}: pass --resume to continue it, or "
                                  "remove it to start again")
        if not run_file.is_file():
            work.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_file, json.dumps(settings, indent=2))
    while rank and not run_file.is_file():
        time.sleep(_WAIT_SECONDS / 4)
    recorded = json.loads(run_file.read_text())
    differ = sorted(key for key in settings.keys() | recorded.keys() if settings.get(key) != recorded.get(key))
    if differ:
        raise ValueError(f"{work} is a partial encode with other inputs ({', '.join(differ)} differ): run it with "
                         f"its own, or remove {work} to start again")


def encode_dataset(model: VideoTokenizer, index_path: str | Path, out_dir: str | Path, size: tuple[int, int],
                   fps: float | None = None, max_frames: int | None = None, split: str | None = None,
                   device: str | torch.device = "cpu", batch_size: int = 16, batch_chunks: int = 8,
                   buckets: Sequence[tuple[int, int]] = (), dtype: torch.dtype = torch.float32, workers: int = 0,
                   rank: int = 0, world: int = 1, resume: bool = False,
                   max_tokens_per_shard: int = 2**28) -> EncodeReport:
    """Encode every row of `index_path` (optionally one split) into a new shard directory `out_dir`, at `size`
    (H, W), or, given `buckets`, at the size of each row's bucket (nearest aspect ratio); this process is `rank`
    of `world` (see the module's header: parts, merge, resume). Returns rank 0's report of the merged shards,
    another rank's of its part.

    Rows keep their order. Clips of at most `batch_chunks` tokenizer chunks (129 frames with 4 latent frames a
    chunk) are encoded `batch_size` at a time (the same codes: a clip of a batch does not see its neighbours);
    longer ones are streamed alone through the causal cache, in bounded memory.
    """
    out_dir = Path(out_dir)
    sizes = [tuple(bucket) for bucket in buckets] or [tuple(size)]
    for bucket in sizes:
        model.latent_shape(1, *bucket)
    index = open_video_index(index_path)
    ids = index.select(split)
    if not len(ids):
        raise ValueError(f"{index_path} has no rows{f' in split {split!r}' if split else ''} to encode")
    source = index.path.stat()
    settings = {"index": str(index.path.resolve()), "index_size": source.st_size,
                "index_mtime_ns": source.st_mtime_ns, "split": split, "sizes": [list(b) for b in sizes], "fps": fps,
                "max_frames": max_frames, "world": world, "dtype": str(dtype), "tokenizer": _fingerprint(model)}
    work = partial_dir(out_dir)
    _start(work, out_dir, settings, rank, resume)
    model = model.to(device=device, dtype=dtype).eval()
    part_dir = work / "parts" / f"rank_{rank}"
    if not (part_dir / "done.json").is_file():
        _encode_part(model, index, ids[rank::world], part_dir, sizes, fps, max_frames, device, dtype, batch_size,
                     batch_chunks, workers, max_tokens_per_shard)
    parts = [work / "parts" / f"rank_{k}" for k in range(world)]
    if rank:
        entries = list(part_entries(part_dir))
        skipped = {entry["path"]: entry["skipped"] for entry in entries if "skipped" in entry}
        return EncodeReport(part_dir, clips=len(entries) - len(skipped), tokens=0, skipped=skipped)
    waiting = [part for part in parts if not (part / "done.json").is_file()]
    if waiting:
        print(f"waiting for {len(waiting)} other rank(s) to finish their parts …", file=sys.stderr)
    while any(not (part / "done.json").is_file() for part in parts):
        time.sleep(_WAIT_SECONDS)
    try:
        clips, tokens, skipped = merge_parts(parts, out_dir, model.codebook_size,
                                             _meta(model, sizes, fps, str(index_path)),
                                             empty=f"none of the {len(ids)} files in {index_path} could be read")
    except ValueError:
        shutil.rmtree(work, ignore_errors=True)  # nothing to resume: every file was unreadable
        raise
    shutil.rmtree(work, ignore_errors=True)
    return EncodeReport(out_dir, clips=clips, tokens=tokens, skipped=skipped)


def _encode_part(model: VideoTokenizer, index: VideoIndex, mine: np.ndarray, part_dir: Path,
                 sizes: Sequence[tuple[int, int]], fps: float | None, max_frames: int | None,
                 device: str | torch.device, dtype: torch.dtype, batch_size: int, batch_chunks: int, workers: int,
                 max_tokens: int) -> None:
    """Encode clips `mine` of `index` into the part at `part_dir`, from the first one it has not recorded."""
    part = ShardPart(part_dir, model.codebook_size, max_tokens)
    if part.clips != mine[:part.done].tolist():
        raise ValueError(f"{part_dir}/progress.jsonl names other clips than this rank's: remove "
                         f"{part_dir.parent.parent} to encode again")
    clips = _Clips(index, mine[part.done:], sizes, fps, max_frames, model.config.temporal_stride,
                   model.config.chunk_latent_frames, batch_chunks)
    options = dict(prefetch_factor=2, worker_init_fn=init_worker, multiprocessing_context=worker_context()) \
        if workers else {}
    loader = torch.utils.data.DataLoader(clips, batch_size=None, collate_fn=_same, num_workers=workers, **options)
    batch = _ClipBatch(model, batch_size, device, dtype)

    def write(entry: tuple[int, dict], codes: torch.Tensor) -> None:
        clip, row = entry
        part.add(clip, codes.numpy(), {key: value for key, value in row.items()
                                       if key not in ("shard", "offset", "shape")})

    def flush() -> None:
        for done in batch.flush():
            write(*done)
        part.commit()

    try:
        for item in tqdm(loader, desc="encode", unit="clip", total=len(mine), initial=part.done, dynamic_ncols=True):
            clip, row, head = item["clip"], item["row"], item["chunks"]
            try:
                if item["error"]:
                    raise ValueError(item["error"])
                if head is not None and batch.fits(head):
                    batch.add((clip, row), head)
                    if len(batch.rows) == batch_size:
                        flush()
                    continue
                codes = None if head is not None else encode_chunks(model, clips.chunks(row), device, dtype)
            except (ValueError, FileNotFoundError) as error:
                warnings.warn(f"skipping {clip_name(row)}: {error}", stacklevel=2)
                flush()  # the progress stays in clip order
                part.skip(clip, clip_name(row), str(error))
                part.commit()
                continue
            flush()
            if codes is None:
                batch.add((clip, row), head)
            else:
                write((clip, row), codes)
                part.commit()
        flush()
    finally:
        part.close()
    atomic_write_text(part_dir / "done.json", json.dumps({"clips": part.done}))


def _meta(model: VideoTokenizer, sizes: Sequence[tuple[int, int]], fps: float | None, source: str) -> dict:
    """meta.json's encode fields: strides, latent grids, sizes, rate, source and tokenizer config."""
    config = model.config
    grids = [[h // config.spatial_stride, w // config.spatial_stride] for h, w in sizes]
    one = {"latent_grid": grids[0], "size": list(sizes[0])} if len(sizes) == 1 else {}  # the single-size keys
    return {"temporal_stride": config.temporal_stride, "spatial_stride": config.spatial_stride, **one,
            "latent_grids": grids, "sizes": [list(bucket) for bucket in sizes], "fps": fps,
            "source_index": source, "tokenizer": to_dict(config)}


def _close(writer: ShardWriter, model: VideoTokenizer, sizes: Sequence[tuple[int, int]], fps: float | None,
           source: str, skipped: dict[str, str], empty: str) -> EncodeReport:
    """Publish the shards with their meta.json; with no clip written, drop them and raise ValueError(`empty`)."""
    if not writer.clips:
        writer.abort()
        raise ValueError(empty)
    writer.close({**_meta(model, sizes, fps, source), "skipped": len(skipped)})
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
