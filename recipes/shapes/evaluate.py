"""Score a text-to-video pipeline on shapes captions: generate N videos per split, check each with the verifier.

Captions are taken in a fixed shuffled order of the split's captions (cycled when N exceeds them) and each video
gets its own seed, so a report is reproducible. Videos are generated in batches (one sampling run per batch).

Variants: with several sizes and/or rates (`sizes`, `rates`), every split is scored at each (size, rate), and the
report has a row per split and condition (a size and rate: "seen 96x64 16fps"), per split over all conditions
("seen"), per size ("96x64") and per rate ("16fps"); with one condition (the default: the pipeline's size and
rate), a row per split.
The verifier is told each video's rate, so its speeds are per second.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from t2v.generator.pipeline import GenerationOptions, TextToVideo
from t2v.generator.sample import SamplingConfig
from t2v.recipes.shapes.dataset import Caption, captions_of_split, render_clip
from t2v.recipes.shapes.verify import VideoCheck, check_video, format_table, score
from t2v.core.atomic import atomic_write_text
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import read_video, write_video


@dataclass
class ShapesEvalConfig:
    """How many videos per split, with which sampling settings, in batches of `batch`."""

    num: int = 64
    splits: Sequence[str] = ("seen", "heldout")
    frames: int = 17
    batch: int = 16
    seed: int = 0
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    save_videos: int = 4  # per split (and condition), as GIFs beside the report
    sizes: Sequence[tuple[int, int]] = ()  # (H, W) frame sizes to score at (empty: the pipeline's)
    rates: Sequence[float] = ()  # frame rates to score at (empty: the pipeline's)

    def __post_init__(self) -> None:
        if self.num < 1 or self.batch < 1 or self.frames < 2:
            raise ValueError(f"need num ≥ 1, batch ≥ 1 and frames ≥ 2, got {self.num}, {self.batch}, {self.frames}")
        if any(len(size) != 2 or min(size) < 1 for size in self.sizes) or any(rate <= 0 for rate in self.rates):
            raise ValueError(f"sizes must be positive (H, W) pairs and rates positive, got {self.sizes}, {self.rates}")

    def conditions(self, pipeline: TextToVideo) -> list[tuple[tuple[int, int], float]]:
        """Every (size (H, W), rate) to score at: the given ones crossed, the pipeline's where none is given."""
        return [(tuple(size), float(rate)) for size in (self.sizes or [tuple(pipeline.info.size)])
                for rate in (self.rates or [pipeline.info.fps])]


def condition_name(size: tuple[int, int], fps: float) -> str:
    """(64, 96), 16 → '96x64 16fps' (WxH, as --size)."""
    return f"{size[1]}x{size[0]} {fps:g}fps"


def eval_captions(split: str, num: int, seed: int) -> list[str]:
    """`num` captions of `split`: a seeded permutation of its captions, repeated as needed."""
    captions = [c.text for c in captions_of_split(split)]
    order = np.random.default_rng(seed).permutation(len(captions))
    return [captions[order[i % len(captions)]] for i in range(num)]


def check_split(pipeline: TextToVideo, split: str, config: ShapesEvalConfig, size: tuple[int, int] | None = None,
                fps: float | None = None, out_dir: Path | None = None, progress: Callable[[int], None] | None = None,
                tag: str = "") -> tuple[list[VideoCheck], list[dict]]:
    """Generate and check `config.num` videos of one split at `size` (H, W) and `fps` (default: the pipeline's);
    the checks and one record per video (GIF names start with the split and `tag`)."""
    size, fps = tuple(size or pipeline.info.size), fps or pipeline.info.fps
    captions = eval_captions(split, config.num, config.seed)
    checks: list[VideoCheck] = []
    records: list[dict] = []
    for start in range(0, len(captions), config.batch):
        batch = captions[start: start + config.batch]
        videos = pipeline(batch, GenerationOptions(frames=config.frames, size=size, fps=fps, sampling=config.sampling,
                                                   seed=config.seed + start))
        for offset, (caption, video) in enumerate(zip(batch, videos)):
            check = check_video(video, caption, fps=fps)
            checks.append(check)
            records.append({"split": split, "caption": caption, "size": list(size), "fps": fps, **check.to_dict()})
            number = start + offset
            if out_dir is not None and number < config.save_videos:
                name = (f"{split}{tag}_{number:03d}_{'pass' if check.passed else 'fail'}_"
                        f"{caption.replace(' ', '_')}.gif")
                write_video(out_dir / name, video, fps, overwrite=True)  # a re-run rewrites its own GIFs
        if progress is not None:
            progress(len(batch))
    return checks, records


def evaluate_pipeline(pipeline: TextToVideo, config: ShapesEvalConfig, out_dir: str | Path | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Scores per split (and per condition, size and rate when there are several, see the file header); with
    `out_dir`, also eval.json (scores + every video's checks), eval.txt and sample GIFs."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    conditions = config.conditions(pipeline)
    checks: dict[tuple[str, tuple[int, int], float], list[VideoCheck]] = {}
    records: list[dict] = []
    for split, (size, fps) in product(config.splits, conditions):
        tag = f"_{condition_name(size, fps).replace(' ', '_')}" if len(conditions) > 1 else ""
        checks[split, size, fps], condition_records = check_split(pipeline, split, config, size, fps, out, progress,
                                                                tag)
        records += condition_records

    def pooled(split: str | None = None, size: tuple[int, int] | None = None, fps: float | None = None) -> dict:
        """The score of every video of the split, size and rate given (None: any)."""
        return score([check for (s, z, r), found in checks.items() for check in found
                      if split in (None, s) and size in (None, z) and fps in (None, r)])

    reports = {split: pooled(split=split) for split in config.splits}
    if len(conditions) > 1:
        reports.update({f"{split} {condition_name(size, fps)}": score(found)
                        for (split, size, fps), found in checks.items()})
        reports.update({f"{size[1]}x{size[0]}": pooled(size=size) for size in dict.fromkeys(z for z, _ in conditions)})
        reports.update({f"{fps:g}fps": pooled(fps=fps) for fps in dict.fromkeys(r for _, r in conditions)})
    if out is not None:
        atomic_write_text(out / "eval.json", json.dumps({"scores": reports, "videos": records}, indent=2))
        atomic_write_text(out / "eval.txt", format_table(reports) + "\n")
    return reports


def evaluate_reconstructions(video_tokenizer: VideoTokenizer, num: int, work_dir: str | Path, frames: int = 17,
                             size: tuple[int, int] = (64, 64), seed: int = 0) -> dict[str, dict]:
    """The verifier's scores on tokenizer reconstructions of true clips (after the mp4 round trip the training
    data goes through): the ceiling of what a generator writing this tokenizer's codes can score."""
    reports = {}
    for split in ("seen", "heldout"):
        checks = []
        for number, caption in enumerate(eval_captions(split, num, seed)):
            clip = render_clip(Caption.parse(caption), frames, size, np.random.default_rng([seed, number]))
            checks.append(check_video(reconstruct_clip(video_tokenizer, clip, work_dir), caption))
        reports[split] = score(checks)
    return reports


def reconstruct_clip(video_tokenizer: VideoTokenizer, clip: np.ndarray, work_dir: str | Path) -> np.ndarray:
    """A uint8 clip (T, H, W, 3) after the mp4 round trip the training data goes through, encoded and decoded."""
    path = write_video(Path(work_dir) / "clip.mp4", clip, 8.0, overwrite=True)  # one scratch file, rewritten
    device = next(video_tokenizer.parameters()).device
    with torch.no_grad():
        codes = video_tokenizer.encode(to_pixels(read_video(path)[0], device))
        return to_uint8(video_tokenizer.decode(codes)[0])
