"""Clip datasets over a jsonl index of (path, caption): clip sampling, fps, resize/crop, bad-file skipping.

Notable choices:
- An index line is `{"path", "caption", optional "start", "end", "split", …}`; a relative path resolves against
  the index file's directory. The index is read as memory-mapped columns (tokenizer/index.py), shared by every
  dataset and DataLoader worker of a process; a dataset holds only its rows' numbers and buckets (a few bytes
  a row). A packed directory (`t2v data pack`, tokenizer/packed.py) is read the same way, each clip's bytes from
  its tar member; `StreamingClips` reads the tar shards in order instead, split over ranks and workers.
- Item i of epoch e draws its clip start from a generator seeded by (seed, e, i): the same clip in any
  DataLoader worker, a new clip each epoch (`set_epoch`).
- A file that is missing, unreadable, truncated or too short (frames actually decoded, not the header's count)
  is skipped: warned about once, recorded in `skipped` (path → reason; per worker process), and another item
  of the same bucket is returned instead. `max_retries` consecutive failures mean the index itself is bad:
  RuntimeError. Attempt j of item i draws from its own generator (seed, e, i, j) and a known-bad file is tried
  again, so an item never depends on which files earlier items found bad: the same in any worker and after a resume.
- Several sizes (`buckets`, (H, W) each, e.g. 1:1, 4:3, 16:9, 9:16 at one pixel budget): each row goes to the
  bucket of nearest aspect ratio (its "size" [H, W] from the index, else the file's header) and its clips are
  resized and cropped to that bucket's size; `buckets` lists the items of each, so a batch can hold one size.
- Tokenizer training draws the batch of each step with `draw_batch` (a function of (seed, rank, step)) inside
  DataLoader workers: `step_loader` iterates `StepBatches`, whose item k is the whole batch of step k, with the
  skipped files carried back beside the video (a worker's `skipped` is not the trainer's).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from t2v.core.step_loader import worker_context
from t2v.tokenizer.frames import to_pixels
from t2v.core.chunks import ROW_CHUNK, chunked_where
from t2v.tokenizer.index import VideoIndex
from t2v.tokenizer.index import read_index, write_index  # noqa: F401 - imported from here before index.py
from t2v.tokenizer.packed import (bytes_file, clip_file, clip_name, decode_json, iter_samples, key_number,
                                  open_packed_index, packed_info, reader_shares, video_member)
from t2v.tokenizer.video_io import iter_video, probe, read_video, resize_and_crop, set_decode_threads


def row_size(row: dict) -> tuple[int, int] | None:
    """(H, W) of a row's video: its "size" field (the prepared index format), else the file's header; None when
    the file cannot be probed (it is skipped later, when read)."""
    size = row.get("size")
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    try:
        info = probe(row["path"])
    except (FileNotFoundError, ValueError):
        return None
    return info.height, info.width


def nearest_bucket(size: tuple[int, int] | None, buckets: Sequence[tuple[int, int]]) -> int:
    """Index of the bucket (H, W) whose aspect ratio is nearest to that of `size` (H, W) (ties and None: the
    first)."""
    if size is None or len(buckets) == 1:
        return 0
    aspect = math.log(size[1] / size[0])
    return min(range(len(buckets)), key=lambda i: abs(math.log(buckets[i][1] / buckets[i][0]) - aspect))


def open_video_index(path: str | os.PathLike) -> VideoIndex:
    """The index at `path`: an index.jsonl, or a packed directory (its index.jsonl of tar members)."""
    return open_packed_index(path) if os.path.isdir(path) else VideoIndex(path)


def bucket_numbers(index: VideoIndex, ids: np.ndarray, buckets: Sequence[tuple[int, int]]) -> np.ndarray:
    """The bucket of each row `ids` of `index` (int16): `nearest_bucket` of its "size" field, asked once per
    distinct size (rows taken `ROW_CHUNK` at a time); a row without one is probed (`row_size`)."""
    numbers = np.zeros(len(ids), dtype=np.int16)
    known_sizes: dict[int, int] = {}  # h << 32 | w → bucket
    for start in range(0, len(ids), ROW_CHUNK):
        sizes, known = index.sizes(ids[start: start + ROW_CHUNK])
        keys = sizes[:, 0].astype(np.int64) << 32 | sizes[:, 1].astype(np.int64)
        distinct, inverse = np.unique(keys[known], return_inverse=True)
        table = np.array([known_sizes.setdefault(int(key), nearest_bucket((int(key) >> 32, int(key) & 0xFFFFFFFF),
                                                                          buckets)) for key in distinct], np.int16)
        chunk = numbers[start: start + ROW_CHUNK]
        chunk[known] = table[inverse.reshape(-1)] if len(distinct) else 0
        for k in np.flatnonzero(~known):
            chunk[k] = nearest_bucket(row_size(index.row(ids[start + k])), buckets)
    return numbers


class SkipClip(Exception):
    """A row that cannot give a clip; the message is the reason."""


def _row_range(row: dict, duration: float) -> tuple[float, float]:
    start = float(row.get("start", 0.0))
    end = float(row["end"]) if "end" in row else duration
    return start, end


def load_clip(row: dict, *, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
    """uint8 (num_frames,H,W,3) from a random start within the row's [start, end]; SkipClip if impossible. A row
    of a packed index is read from its tar member."""
    try:
        with clip_file(row) as path:
            return _load_clip(row, path, num_frames=num_frames, fps=fps, rng=rng)
    except FileNotFoundError as error:
        raise SkipClip(f"missing: {error}") from None
    except ValueError as error:
        raise SkipClip(f"unreadable: {error}") from None


def _load_clip(row: dict, path: str, *, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
    info = probe(path)
    native = info.fps or fps or 1.0
    rate = fps or native
    start, end = _row_range(row, info.duration or math.inf)
    # 1. choose a start: on the native frame grid when not resampling, anywhere when resampling
    room = end - start - num_frames / rate
    # Containers round the duration to their time base (a 17-frame 16 fps mp4 can say 1.062 s, not 1.0625):
    # up to half a frame short is rounding, and the decoded frames are counted below anyway.
    if room < -0.5 / rate:
        raise SkipClip(f"too short: {end - start:.3f}s, need {num_frames} frames at {rate:g} fps")
    if math.isinf(room):
        offset = 0.0
    elif fps is None:
        offset = int(rng.integers(0, int(room * native + 1e-6) + 1)) / native
    else:
        offset = float(rng.uniform(0.0, max(room, 0.0)))
    # 2. decode; count the frames actually decoded
    frames, _ = read_video(path, fps=fps, start=start + offset, end=end if "end" in row else None,
                           max_frames=num_frames)
    if len(frames) < num_frames:
        raise SkipClip(f"too short: decoded {len(frames)} frames, need {num_frames}")
    return frames


class ClipDataset(torch.utils.data.Dataset):
    """Random clips of `num_frames` frames at `fps`, resized and cropped to size=(H, W), or, given `buckets`,
    to the size of each row's bucket (nearest aspect ratio).

    Items are {"video": float32 (3,T,H,W) in [-1,1], "caption": str, "path": str}.
    Example: `ClipDataset("data/shapes/index.jsonl", num_frames=17, size=(64, 64), split="seen")`
    """

    def __init__(self, index_path: str | os.PathLike, *, num_frames: int, size: tuple[int, int],
                 fps: float | None = None, crop: str = "random", split: str | None = None, seed: int = 0,
                 max_retries: int = 20, buckets: Sequence[tuple[int, int]] = ()) -> None:
        if num_frames < 1 or max_retries < 1:
            raise ValueError(f"need num_frames >= 1 and max_retries >= 1, got {num_frames}, {max_retries}")
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
        self.index = open_video_index(index_path)
        self.ids = self.index.select(split)  # row numbers in the index: shared, read-only, memoized per split
        if not len(self.ids):
            raise ValueError(f"no rows in {index_path}" + (f" with split {split!r}" if split else "")
                             + ": check the index and the --split value")
        self.rows = self.index.rows(self.ids)  # dicts made on demand
        self.num_frames, self.size, self.fps, self.crop = num_frames, tuple(size), fps, crop
        self.seed, self.max_retries, self.epoch = seed, max_retries, 0
        self.skipped: dict[str, str] = {}
        self.sizes = [tuple(bucket) for bucket in buckets] or [self.size]  # (H, W) of each bucket
        self.bucket_of = bucket_numbers(self.index, self.ids, self.sizes) if buckets else \
            np.zeros(len(self.ids), dtype=np.int16)
        # item indices of each bucket (in `sizes` order; some may be empty)
        self.buckets = [chunked_where(len(self.ids), lambda start, stop: self.bucket_of[start:stop] == number)
                        for number in range(len(self.sizes))]

    def size_of(self, i: int) -> tuple[int, int]:
        """(H, W) of item i's clips."""
        return self.sizes[self.bucket_of[i]]

    def set_epoch(self, epoch: int) -> None:
        """Draw new clips: item i of epoch e uses the generator seeded by (seed, e, i)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        bucket = self.buckets[self.bucket_of[i]]  # retries draw another clip of the same size
        for attempt in range(self.max_retries):
            # attempt 0 reads row i; a retry draws another row, from a generator of its own (see the header)
            rng = np.random.default_rng([self.seed, self.epoch, i, attempt] if attempt else [self.seed, self.epoch, i])
            index = bucket[int(rng.integers(len(bucket)))] if attempt else i
            row = self.rows[index]
            try:
                frames = load_clip(row, num_frames=self.num_frames, fps=self.fps, rng=rng)
            except SkipClip as reason:
                self._skip(clip_name(row), str(reason))
            else:
                frames = resize_and_crop(frames, self.size_of(index), self.crop, rng)
                return {"video": to_pixels(frames)[0], "caption": row["caption"], "path": row["path"]}
        raise ValueError(f"{self.max_retries} clips in a row could not be read (last: {clip_name(row)}: "
                         f"{self.skipped.get(clip_name(row))}); run `t2v data check` on the index")

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            warnings.warn(f"skipping {path}: {reason}", stacklevel=3)
        self.skipped[path] = reason


class StreamingClips(torch.utils.data.IterableDataset):
    """The clips of a packed directory (`t2v data pack`) read in shard order, a sequential stream: this `rank` of
    `world`, and each DataLoader worker of it, reads its own share (`reader_shares`: whole shards, or every n-th
    sample of a shard when there are fewer shards than readers), so each sample is read once per pass.

    Items are ClipDataset's ({"video": (3, T, H, W), "caption", "path": shard:key}) plus "skipped": every sample
    this reader could not use so far (a damaged json or tar, no video member, a file that cannot give a clip),
    name → reason; an item is handed out when the next one is ready, so the last one carries the reader's whole
    record (`collate_clips` batches items and merges their records). The clip's start and crop come from
    (seed, epoch, row number), as ClipDataset's from (seed, epoch, item).
    """

    def __init__(self, directory: str | os.PathLike, *, num_frames: int, size: tuple[int, int],
                 fps: float | None = None, crop: str = "random", split: str | None = None, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        if crop not in ("center", "random") or num_frames < 1 or not 0 <= rank < world:
            raise ValueError(f"need crop center|random, num_frames >= 1 and 0 <= rank < world, got {crop!r}, "
                             f"{num_frames}, {rank}, {world}")
        self.directory = Path(directory)
        self.shards = [self.directory / name for name in packed_info(directory)["shards"]]
        self.num_frames, self.size, self.fps, self.crop, self.split = num_frames, tuple(size), fps, crop, split
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.skipped: dict[str, str] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pending = None
        for item in self._items(self.rank * workers + worker, self.world * workers):
            if pending is not None:
                yield {**pending, "skipped": dict(self.skipped)}
            pending = item
        if pending is not None:
            yield {**pending, "skipped": dict(self.skipped)}

    def _items(self, reader: int, readers: int) -> Iterator[dict]:
        for shard, modulus, remainder in reader_shares(len(self.shards), reader, readers):
            for number, sample in enumerate(iter_samples(self.shards[shard])):
                if number % modulus != remainder:
                    continue
                name = f"{self.shards[shard]}:{sample.key}"
                try:
                    if sample.error:
                        raise SkipClip(sample.error)
                    row = decode_json(sample)
                    if self.split is not None and row.get("split") != self.split:
                        continue
                    suffix, data = video_member(sample)
                    rng = np.random.default_rng([self.seed, self.epoch, key_number(sample.key)])
                    with bytes_file(data, f".{suffix}") as path:
                        frames = _load_clip(row, path, num_frames=self.num_frames, fps=self.fps, rng=rng)
                except (SkipClip, ValueError, FileNotFoundError) as reason:
                    self.skipped[name] = str(reason)
                    continue
                frames = resize_and_crop(frames, self.size, self.crop, rng)
                yield {"video": to_pixels(frames)[0], "caption": row["caption"], "path": name}


def collate_clips(items: list[dict]) -> dict:
    """StreamingClips items → {"video": (B, 3, T, H, W), "caption": [...], "path": [...], "skipped": merged}."""
    skipped: dict[str, str] = {}
    for item in items:
        skipped.update(item.get("skipped", {}))
    return {"video": torch.stack([item["video"] for item in items]), "caption": [item["caption"] for item in items],
            "path": [item["path"] for item in items], "skipped": skipped}


def draw_batch(dataset: ClipDataset, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
    """The batch of `rank` at `step`, clips of one size: its bucket (drawn in proportion to the bucket's clips),
    indices and the clips' own randomness depend on (seed, rank, step) only."""
    # SeedSequence hashes the three numbers: an affine mix of them repeats (rank 1 at step 0 drew rank 0's step 7,919)
    entropy = [seed % 2**63, rank, step]
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]))
    buckets = [bucket for bucket in dataset.buckets if len(bucket)]
    if len(buckets) == 1:
        indices = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
    else:
        weights = torch.tensor([len(bucket) for bucket in buckets], dtype=torch.float64)
        bucket = buckets[int(torch.multinomial(weights, 1, generator=generator))]
        indices = [bucket[i] for i in torch.randint(len(bucket), (batch_size,), generator=generator).tolist()]
    dataset.set_epoch(step)  # the clips' start times and crops: a function of (seed, step, index)
    return torch.stack([dataset[index]["video"] for index in indices])  # (B, 3, T, H, W)


@dataclass(frozen=True)
class Phase:
    """Training steps before `until` draw `batch_size` items of `dataset` (an image phase of single frames, then
    clips); the last phase also covers every step after its `until`."""

    dataset: ClipDataset
    batch_size: int
    until: float = math.inf


def phase_at(phases: Sequence[Phase], step: int) -> Phase:
    """The phase of `step`: the first whose `until` is past it, else the last."""
    return next((phase for phase in phases if step < phase.until), phases[-1])


def draw_step(phases: Sequence[Phase], seed: int, rank: int, step: int) -> torch.Tensor:
    """The batch of `rank` at `step`, from the dataset of the step's phase."""
    phase = phase_at(phases, step)
    return draw_batch(phase.dataset, phase.batch_size, seed, rank, step)


class StepBatches(torch.utils.data.Dataset):
    """Item k is the batch of `rank` at step `steps[k]`: {"video": (B,3,T,H,W), "skipped": {path: reason}}, the
    skipped files being every file this process's datasets have skipped so far."""

    def __init__(self, phases: Sequence[Phase], *, seed: int, rank: int, steps: range) -> None:
        if not phases:
            raise ValueError("StepBatches needs at least one phase")
        self.phases, self.seed, self.rank, self.steps = tuple(phases), seed, rank, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int) -> dict:
        video = draw_step(self.phases, self.seed, self.rank, self.steps[k])
        skipped = {path: reason for phase in self.phases for path, reason in phase.dataset.skipped.items()}
        return {"video": video, "skipped": skipped}


def init_worker(worker_id: int) -> None:
    """A DataLoader worker computes on one thread and decodes without a pool: the trainer keeps the cores."""
    torch.set_num_threads(1)
    set_decode_threads(1)


def step_loader(phases: Sequence[Phase], *, seed: int, rank: int, steps: range, num_workers: int,
                prefetch_batches: int, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The batches of `steps` in order, drawn by `num_workers` worker processes (0: in this process), each keeping
    up to `prefetch_batches` batches ready. The loader has its own generator: iterating it never draws from the
    global torch RNG, which a resumed run restores exactly."""
    if num_workers < 0 or prefetch_batches < 1:
        raise ValueError(f"need num_workers >= 0 and prefetch_batches >= 1, got {num_workers}, {prefetch_batches}")
    workers = dict(prefetch_factor=prefetch_batches, worker_init_fn=init_worker,
                   multiprocessing_context=worker_context()) if num_workers else {}
    return torch.utils.data.DataLoader(StepBatches(phases, seed=seed, rank=rank, steps=steps), batch_size=None,
                                       num_workers=num_workers, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(seed), **workers)


@dataclass
class CheckReport:
    """What a ClipDataset over an index would skip."""

    total: int
    ok: int
    skipped: dict[str, str] = field(default_factory=dict)  # path → reason

    def format(self) -> str:
        """A human-readable summary, one line per skipped file."""
        lines = [f"{self.ok}/{self.total} ok, {len(self.skipped)} skipped"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)

    __str__ = format


def check_index(index_path: str | os.PathLike, *, num_frames: int, fps: float | None = None,
                progress: Callable[[int], None] | None = None) -> CheckReport:
    """Decode every row's whole range and report rows that cannot give `num_frames` frames; `progress(1)` after
    each row."""
    rows = open_video_index(index_path).rows()
    skipped: dict[str, str] = {}
    for row in rows:
        name = clip_name(row)
        try:
            start = float(row.get("start", 0.0))
            with clip_file(row) as path:
                count = sum(len(chunk) for chunk in iter_video(path, fps=fps, start=start, end=row.get("end")))
            if count < num_frames:
                skipped[name] = f"too short: decoded {count} frames, need {num_frames}"
        except FileNotFoundError as error:
            skipped[name] = f"missing: {error}"
        except ValueError as error:
            skipped[name] = f"unreadable: {error}"
        if progress is not None:
            progress(1)
    return CheckReport(total=len(rows), ok=len(rows) - len(skipped), skipped=skipped)
