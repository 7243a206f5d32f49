"""Held-out evaluation of a tokenizer: PSNR, SSIM, LPIPS (when its weights are on disk), codebook usage and
perplexity, and the PSNR of two reconstructions that learn nothing on the same clips (metrics.py: down-sampled by
the tokenizer's spatial stride and up-sampled again; each frame's mean colour); side-by-side sample videos
(original | reconstruction); `FolderClips`, the clips of a folder of video files. Clips of several sizes (a bucketed
dataset) are batched by size, and sample rows narrower than the widest are padded with black.

The metrics average over the clips actually read: an unreadable file among the first `num_clips` is skipped and
recorded in `EvalResult.skipped` (path → reason), never replaced by another clip (the dataset's substitute).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from t2v.tokenizer.losses import build_lpips, lpips_per_frame
from t2v.tokenizer.metrics import downsampled, mean_colour, psnr, ssim
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.quantizer import codebook_stats
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import read_video, resize_and_crop, write_video


@dataclass
class EvalResult:
    """Held-out metrics over `clips` clips scored (NaN when none could be read); `skipped`: the unreadable files
    left out (path → reason)."""

    psnr: float
    ssim: float
    lpips: float | None
    codebook_usage: float
    perplexity: float
    clips: int
    skipped: dict[str, str] = field(default_factory=dict)
    psnr_downsampled: float = math.nan  # the same clips down-sampled by the spatial stride and up-sampled again
    psnr_mean_colour: float = math.nan  # each frame's mean colour

    def as_dict(self) -> dict[str, float | int | None]:
        """`eval_<metric>` for a metrics line; `eval_skipped` is the number of files skipped."""
        values = {**asdict(self), "skipped": len(self.skipped)}
        return {f"eval_{key}": value for key, value in values.items()}

    def summary(self) -> str:
        counts = f"{self.clips} clips scored, {len(self.skipped)} unreadable skipped"
        if not self.clips:
            return f"held-out evaluation: no clip could be read ({counts}); run `t2v data check` on the index"
        lp = f", LPIPS {self.lpips:.4f}" if self.lpips is not None else ""
        return (f"held-out PSNR {self.psnr:.2f} dB (down-sampled {self.psnr_downsampled:.2f}, mean colour "
                f"{self.psnr_mean_colour:.2f}), SSIM {self.ssim:.4f}{lp}, codebook usage "
                f"{100 * self.codebook_usage:.1f}%, perplexity {self.perplexity:.0f} ({counts})")


VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".y4m")


class FolderClips:
    """A dataset for `evaluate`: the first `num_frames` frames of each video file in `folder` (sorted by name),
    resized to cover `size` (H, W) and center-cropped; a file with fewer frames is a ValueError naming it."""

    def __init__(self, folder: str | Path, size: tuple[int, int], num_frames: int) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder of videos at {folder}")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not self.files:
            raise ValueError(f"{folder} holds no video files ({', '.join(VIDEO_SUFFIXES)})")
        self.size, self.num_frames = tuple(size), num_frames

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Nothing to draw: the same frames every time."""

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        frames, _ = read_video(path, max_frames=self.num_frames)
        if len(frames) < self.num_frames:
            raise ValueError(f"{path} has {len(frames)} frames, fewer than the {self.num_frames} asked for: pass "
                             "fewer frames or leave the file out")
        return {"video": to_pixels(resize_and_crop(frames, self.size))[0], "path": str(path)}


def _optional_lpips():
    """LPIPS with the pretrained backbone if its weights are on disk, else None (the metric is then skipped)."""
    try:
        return build_lpips()
    except FileNotFoundError:
        return None


def size_batches(dataset, count: int, batch_size: int) -> list[list[int]]:
    """Indices 0 … count-1 in runs of at most `batch_size` consecutive items of one size (`dataset.size_of`)."""
    size_of = getattr(dataset, "size_of", lambda index: None)
    batches: list[list[int]] = []
    for index in range(count):
        if batches and len(batches[-1]) < batch_size and size_of(batches[-1][0]) == size_of(index):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def own_clip(dataset, index: int, skipped: dict[str, str]) -> torch.Tensor | None:
    """Item `index`'s own clip (3, T, H, W), or None with its file recorded in `skipped` (path → reason) when it
    cannot be read. A ClipDataset is read with one try (a shallow copy: the same rows and `skipped` record), so it
    never returns a clip of another file in its place."""
    if not hasattr(dataset, "max_retries"):
        return dataset[index]["video"]
    strict = copy.copy(dataset)
    strict.max_retries = 1
    try:
        return strict[index]["video"]
    except (RuntimeError, ValueError):  # the one try failed ("1 clips in a row…"): the dataset warned, recorded why
        path = dataset.rows[index]["path"]
        if path not in dataset.skipped:
            raise
        skipped[path] = dataset.skipped[path]
        return None


@torch.no_grad()
def evaluate(model: VideoTokenizer, dataset, num_clips: int, device: torch.device, batch_size: int = 8) -> EvalResult:
    """Reconstruct the first `num_clips` clips of `dataset` (deterministic: center crop, fixed seeds); unreadable
    ones are skipped (`EvalResult.skipped`) and the metrics average over the others."""
    model.eval()
    metric = _optional_lpips()
    counts = torch.zeros(model.codebook_size, dtype=torch.long)
    psnrs, ssims, lpipses, references = [], [], [], {"downsampled": [], "mean_colour": []}
    skipped: dict[str, str] = {}
    count, scored = min(num_clips, len(dataset)), 0
    dataset.set_epoch(0)  # the same clips at every evaluation
    for batch in size_batches(dataset, count, batch_size):
        clips = [clip for clip in (own_clip(dataset, i, skipped) for i in batch) if clip is not None]
        if not clips:
            continue
        video = torch.stack(clips).to(device)  # (B, 3, T, H, W)
        scored += len(clips)
        codes = model.encode(video)
        reconstruction = model.decode(codes)
        counts += torch.bincount(codes.flatten().cpu(), minlength=model.codebook_size)
        psnrs.append(psnr(video, reconstruction).clamp(max=100))
        ssims.append(ssim(video, reconstruction))
        references["downsampled"].append(psnr(video, downsampled(video, model.config.spatial_stride)).clamp(max=100))
        references["mean_colour"].append(psnr(video, mean_colour(video)).clamp(max=100))
        if metric is not None:
            # the batch's mean once per clip: the average is over clips, whatever the batches' sizes
            lpipses.append(lpips_per_frame(metric.to(device), video, reconstruction).reshape(1).repeat(len(clips)))
    model.train()
    if not psnrs:  # every clip unreadable: no metric, rather than one of substitutes
        return EvalResult(psnr=math.nan, ssim=math.nan, lpips=None, codebook_usage=math.nan, perplexity=math.nan,
                          clips=0, skipped=skipped)
    stats = codebook_stats(counts)
    return EvalResult(psnr=float(torch.cat(psnrs).mean()), ssim=float(torch.cat(ssims).mean()),
                      lpips=float(torch.cat(lpipses).mean()) if lpipses else None,
                      codebook_usage=stats["codebook_usage"], perplexity=stats["perplexity"],
                      clips=scored, skipped=skipped,
                      psnr_downsampled=float(torch.cat(references["downsampled"]).mean()),
                      psnr_mean_colour=float(torch.cat(references["mean_colour"]).mean()))


@torch.no_grad()
def write_samples(model: VideoTokenizer, dataset, count: int, out_dir: Path, name: str, fps: float,
                  device: torch.device) -> Path | None:
    """Write `out_dir/name.mp4`: each row one clip, original on the left, reconstruction on the right."""
    count = min(count, len(dataset))
    if count == 0:
        return None
    model.eval()
    rows = []
    dataset.set_epoch(0)
    for index in range(count):
        video = dataset[index]["video"][None].to(device)  # (1, 3, T, H, W)
        reconstruction = model.decode(model.encode(video))
        rows.append(np.concatenate([to_uint8(video[0]), to_uint8(reconstruction[0])], axis=2))  # side by side
    model.train()
    width = max(row.shape[2] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, 0), (0, width - row.shape[2]), (0, 0))) for row in rows]  # (T, H, width, 3)
    return write_video(Path(out_dir) / f"{name}.mp4", np.concatenate(rows, axis=1), fps=fps, overwrite=True)
