"""Score a text-to-video pipeline on shapes captions: generate N videos per split, check each with the verifier
(t2v.recipes.evaluation does the generating and the tables; this module is the shapes `Judge`).

Captions are taken in a fixed shuffled order of the split's captions (cycled when N exceeds them) and each video
gets its own seed. The verifier is told each video's rate, so its speeds are per second.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from t2v.generator.pipeline import TextToVideo
from t2v.recipes.evaluation import EvalConfig, Judge
from t2v.recipes import evaluation
from t2v.recipes.shapes.dataset import Caption, captions_of_split, render_clip
from t2v.recipes.shapes.verify import check_video, format_table, score
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import read_video, write_video


def eval_captions(split: str, num: int, seed: int) -> list[str]:
    """`num` captions of `split`: a seeded permutation of its captions, repeated as needed."""
    captions = [c.text for c in captions_of_split(split)]
    order = np.random.default_rng(seed).permutation(len(captions))
    return [captions[order[i % len(captions)]] for i in range(num)]


JUDGE = Judge(captions=eval_captions, check=lambda video, caption, fps: check_video(video, caption, fps=fps),
              score=score)


def evaluate_pipeline(pipeline: TextToVideo, config: EvalConfig, out_dir: str | Path | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """The verifier's scores per split (and condition) of `config.num` videos each; with `out_dir`, eval.json,
    eval.txt and sample GIFs (t2v.recipes.evaluation.evaluate_pipeline)."""
    return evaluation.evaluate_pipeline(pipeline, JUDGE, config, out_dir, progress, table=format_table)


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
