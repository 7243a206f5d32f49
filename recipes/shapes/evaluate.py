"""Score a text-to-video pipeline on shapes captions: generate N videos per split, check each with the verifier.

Captions are taken in a fixed shuffled order of the split's captions (cycled when N exceeds them) and each video
gets its own seed, so a report is reproducible. Videos are generated in batches (one sampling run per batch).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from t2v.generator.pipeline import TextToVideo
from t2v.generator.sample import SamplingConfig
from t2v.recipes.shapes.dataset import Caption, captions_of_split, render_clip
from t2v.recipes.shapes.verify import VideoCheck, check_video, format_table, score
from t2v.tokenizer.atomic import atomic_write_text
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.streaming import to_pixels, to_uint8
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
    save_videos: int = 4  # per split, as GIFs beside the report


def eval_captions(split: str, num: int, seed: int) -> list[str]:
    """`num` captions of `split`: a seeded permutation of its captions, repeated as needed."""
    captions = [c.text for c in captions_of_split(split)]
    order = np.random.default_rng(seed).permutation(len(captions))
    return [captions[order[i % len(captions)]] for i in range(num)]


def evaluate_split(pipeline: TextToVideo, split: str, config: ShapesEvalConfig, out_dir: Path | None = None,
                   progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """Generate and check `config.num` videos of one split; the score and one record per video."""
    captions = eval_captions(split, config.num, config.seed)
    checks: list[VideoCheck] = []
    records: list[dict] = []
    for start in range(0, len(captions), config.batch):
        batch = captions[start: start + config.batch]
        videos = pipeline(batch, frames=config.frames, sampling=config.sampling, seed=config.seed + start)
        for offset, (caption, video) in enumerate(zip(batch, videos)):
            check = check_video(video, caption)
            checks.append(check)
            records.append({"split": split, "caption": caption, **check.to_dict()})
            number = start + offset
            if out_dir is not None and number < config.save_videos:
                name = f"{split}_{number:03d}_{'pass' if check.passed else 'fail'}_{caption.replace(' ', '_')}.gif"
                write_video(out_dir / name, video, pipeline.info.fps)
        if progress is not None:
            progress(len(batch))
    return score(checks), records


def evaluate_pipeline(pipeline: TextToVideo, config: ShapesEvalConfig, out_dir: str | Path | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Scores per split; with `out_dir`, also eval.json (scores + every video's checks), eval.txt and sample GIFs."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    reports, records = {}, []
    for split in config.splits:
        reports[split], split_records = evaluate_split(pipeline, split, config, out, progress)
        records += split_records
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
            path = write_video(Path(work_dir) / "clip.mp4", clip, 8.0)
            with torch.no_grad():
                codes = video_tokenizer.encode(to_pixels(read_video(path)[0]))
                checks.append(check_video(to_uint8(video_tokenizer.decode(codes)[0]), caption))
        reports[split] = score(checks)
    return reports
