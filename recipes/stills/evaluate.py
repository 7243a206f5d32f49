"""Score a text-to-video pipeline on stills captions: generate N videos per split, check each one's camera motion
(t2v.recipes.evaluation does the generating and the tables; this module is the stills `Judge`).

Caption i of a split has motion kind KINDS[i mod 9] (every kind equally often), its direction and photographs
drawn from the generator seeded by (seed, split, i). A video passes when the motion check (verify.check_clip)
measures what its caption says; `direction` is the fraction passed among the captions that name a direction
(pan, tilt, zoom, rotate, parallax, occlusion), `overall` among all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from t2v.generator.pipeline import TextToVideo
from t2v.recipes import evaluation
from t2v.recipes.evaluation import EvalConfig, Judge
from t2v.recipes.stills.dataset import DIRECTIONS, KINDS, Caption, draw_caption
from t2v.recipes.stills.photos import SPLITS
from t2v.recipes.stills.verify import check_clip

DIRECTED = tuple(kind for kind in KINDS if kind in DIRECTIONS)  # the kinds whose captions name a direction


@dataclass(frozen=True)
class MotionCheck:
    """One video's motion check: its caption's kind, what the caption calls for, what was measured."""

    kind: str
    passed: bool
    expected: str
    measured: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "passed": self.passed, "expected": self.expected, "measured": self.measured}


def eval_captions(split: str, num: int, seed: int) -> list[str]:
    """`num` captions of `split`, kind i mod 9 for caption i (each from its own seeded generator)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return [draw_caption(np.random.default_rng([seed, SPLITS.index(split), i]), split, KINDS[i % len(KINDS)]).text
            for i in range(num)]


def check_video(video: np.ndarray, caption: str, fps: float) -> MotionCheck:
    """The motion check of one uint8 (T, H, W, 3) video at `fps` against its caption."""
    parsed = Caption.parse(caption)
    result = check_clip(video, parsed, fps)
    return MotionCheck(parsed.kind, bool(result["passed"]), result["expected"], result["measured"])


def score(checks: Sequence[MotionCheck]) -> dict:
    """The fraction passed per kind, among the directed kinds ('direction') and among all ('overall'), the
    standard errors of those two (binomial), and 'num'; a fraction of no videos is None."""
    def fraction(found: list[MotionCheck]) -> float | None:
        return sum(check.passed for check in found) / len(found) if found else None

    report: dict = {kind: fraction([c for c in checks if c.kind == kind]) for kind in KINDS}
    for name, found in (("direction", [c for c in checks if c.kind in DIRECTED]), ("overall", list(checks))):
        report[name] = fraction(found)
        report[f"{name}_stderr"] = (math.sqrt(report[name] * (1 - report[name]) / len(found)) if found else None)
    report["num"] = len(checks)
    return report


def format_table(reports: dict[str, dict]) -> str:
    """A row per split: the fraction passed per kind, 'direction' with its ± (standard error), 'overall', n."""
    return evaluation.format_table(reports, (*KINDS, "overall", "direction"), stderr="direction")


JUDGE = Judge(captions=eval_captions, check=check_video, score=score)


def evaluate_pipeline(pipeline: TextToVideo, config: EvalConfig, out_dir: str | Path | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """The motion check's scores per split (and condition) of `config.num` videos each; with `out_dir`,
    eval.json, eval.txt and sample GIFs (t2v.recipes.evaluation.evaluate_pipeline)."""
    return evaluation.evaluate_pipeline(pipeline, JUDGE, config, out_dir, progress, table=format_table)
