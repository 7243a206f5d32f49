"""Clip datasets over a jsonl index of (path, caption): clip sampling, fps, resize/crop, bad-file skipping.

Notable choices:
- An index line is `{"path", "caption", optional "start", "end", "split", …}`; a relative path resolves against
  the index file's directory.
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

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from t2v.core.atomic import atomic_file
from t2v.tokenizer.frames import to_pixels
from t2v.tokenizer.video_io import iter_video, probe, read_video, resize_and_crop, set_decode_threads


def read_index(path: str | os.PathLike) -> list[dict]:
    """Rows of a jsonl index, with "path" made absolute (relative to the index's directory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"index not found: {path}")
    rows, damaged = [], []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
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
        row["path"] = str(path.parent / row["path"])
        rows.append(row)
    if damaged:
        numbers = ", ".join(str(number) for number, _ in damaged[:6]) + (", …" if len(damaged) > 6 else "")
        more = f"; {len(damaged)} of {len(lines)} lines are damaged ({numbers})" if len(damaged) > 1 else ""
        raise ValueError(f"{path}:{damaged[0][0]}: not valid JSON ({damaged[0][1]}){more}; each line must be one "
                         "JSON object like {\"path\": \"videos/a.mp4\", \"caption\": \"...\"}")
    return rows


def write_index(rows: Iterable[dict], out_index: str | os.PathLike) -> Path:
    """Write `rows` as jsonl to `out_index` atomically (an error while iterating leaves the old file as it was)."""
    out_index = Path(out_index)
    with atomic_file(out_index) as temp, temp.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out_index


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


class SkipClip(Exception):
    """A row that cannot give a clip; the message is the reason."""


def _row_range(row: dict, duration: float) -> tuple[float, float]:
    start = float(row.get("start", 0.0))
    end = float(row["end"]) if "end" in row else duration
    return start, end


def load_clip(row: dict, *, num_frames: int, fps: float | None, rng: np.random.Generator) -> np.ndarray:
    """uint8 (num_frames,H,W,3) from a random start within the row's [start, end]; SkipClip if impossible."""
    try:
        info = probe(row["path"])
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
        frames, _ = read_video(row["path"], fps=fps, start=start + offset, end=end if "end" in row else None,
                               max_frames=num_frames)
    except FileNotFoundError as error:
        raise SkipClip(f"missing: {error}") from None
    except ValueError as error:
        raise SkipClip(f"unreadable: {error}") from None
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
        self.rows = [r for r in read_index(index_path) if split is None or r.get("split") == split]
        if not self.rows:
            raise ValueError(f"no rows in {index_path}" + (f" with split {split!r}" if split else "")
                             + ": check the index and the --split value")
        self.num_frames, self.size, self.fps, self.crop = num_frames, tuple(size), fps, crop
        self.seed, self.max_retries, self.epoch = seed, max_retries, 0
        self.skipped: dict[str, str] = {}
        self.sizes = [tuple(bucket) for bucket in buckets] or [self.size]  # (H, W) of each bucket
        self.bucket_of = [nearest_bucket(row_size(row), self.sizes) if buckets else 0 for row in self.rows]
        members: list[list[int]] = [[] for _ in self.sizes]
        for index, bucket in enumerate(self.bucket_of):
            members[bucket].append(index)
        self.buckets = members  # item indices of each bucket (in `sizes` order; some may be empty)

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
                self._skip(row["path"], str(reason))
            else:
                frames = resize_and_crop(frames, self.size_of(index), self.crop, rng)
                return {"video": to_pixels(frames)[0], "caption": row["caption"], "path": row["path"]}
        raise ValueError(f"{self.max_retries} clips in a row could not be read (last: {row['path']}: "
                         f"{self.skipped.get(row['path'])}); run `t2v data check` on the index")

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            warnings.warn(f"skipping {path}: {reason}", stacklevel=3)
        self.skipped[path] = reason


def draw_batch(dataset: ClipDataset, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
    """The batch of `rank` at `step`, clips of one size: its bucket (drawn in proportion to the bucket's clips),
    indices and the clips' own randomness depend on (seed, rank, step) only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + rank * 7_919 + step)
    buckets = [bucket for bucket in dataset.buckets if bucket]
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
    workers = dict(prefetch_factor=prefetch_batches, worker_init_fn=init_worker) if num_workers else {}
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


def check_index(index_path: str | os.PathLike, *, num_frames: int, fps: float | None = None) -> CheckReport:
    """Decode every row's whole range and report rows that cannot give `num_frames` frames."""
    rows = read_index(index_path)
    skipped: dict[str, str] = {}
    for row in rows:
        try:
            start = float(row.get("start", 0.0))
            count = sum(len(chunk) for chunk in iter_video(row["path"], fps=fps, start=start, end=row.get("end")))
            if count < num_frames:
                skipped[row["path"]] = f"too short: decoded {count} frames, need {num_frames}"
        except FileNotFoundError as error:
            skipped[row["path"]] = f"missing: {error}"
        except ValueError as error:
            skipped[row["path"]] = f"unreadable: {error}"
    return CheckReport(total=len(rows), ok=len(rows) - len(skipped), skipped=skipped)
