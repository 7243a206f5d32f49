"""Scoring a text-to-video pipeline with a recipe's checker: generate N videos per split (and per size and rate),
check each against its caption, report the fraction passed. Shared by every recipe's `evaluate` module, which
supplies a `Judge`: its captions per split, its check of one video, its scores over many.

Captions come in an order fixed by the seed and each batch gets its own seed, so a report is reproducible.
Videos are generated in batches (one sampling run per batch).

With several sizes and/or rates (`sizes`, `rates`), every split is scored at each (size, rate), and the report has
a row per split and condition ("seen 96x64 16fps"), per split over all conditions ("seen"), per size ("96x64") and
per rate ("16fps"); with one condition (the default: the pipeline's size and rate), a row per split. The checker is
told each video's rate, so its speeds are per second.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from t2v.core.atomic import atomic_write_text
from t2v.generator.pipeline import GenerationOptions, TextToVideo
from t2v.generator.sample import SamplingConfig
from t2v.tokenizer.video_io import write_video


@dataclass
class EvalConfig:
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


class Check(Protocol):
    """One video's verdict: whether it passed, and everything measured, as a JSON-able dict."""

    @property
    def passed(self) -> bool: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class Judge:
    """A recipe's evaluation: `captions(split, num, seed)` → `num` captions of the split, `check(video, caption,
    fps)` → a `Check` of one uint8 (T, H, W, 3) video, `score(checks)` → {metric: value, …, "num": n}."""

    captions: Callable[[str, int, int], list[str]]
    check: Callable[[np.ndarray, str, float], Check]
    score: Callable[[Sequence[Check]], dict]


def condition_name(size: tuple[int, int], fps: float) -> str:
    """(64, 96), 16 → '96x64 16fps' (WxH, as --size)."""
    return f"{size[1]}x{size[0]} {fps:g}fps"


def check_split(pipeline: TextToVideo, judge: Judge, split: str, config: EvalConfig,
                size: tuple[int, int] | None = None, fps: float | None = None, out_dir: Path | None = None,
                progress: Callable[[int], None] | None = None, tag: str = "") -> tuple[list[Check], list[dict]]:
    """Generate and check `config.num` videos of one split at `size` (H, W) and `fps` (default: the pipeline's);
    the checks and one record per video (GIF names start with the split and `tag`)."""
    size, fps = tuple(size or pipeline.info.size), fps or pipeline.info.fps
    captions = judge.captions(split, config.num, config.seed)
    checks: list[Check] = []
    records: list[dict] = []
    for start in range(0, len(captions), config.batch):
        batch = captions[start: start + config.batch]
        videos = pipeline(batch, GenerationOptions(frames=config.frames, size=size, fps=fps, sampling=config.sampling,
                                                   seed=config.seed + start))
        for offset, (caption, video) in enumerate(zip(batch, videos)):
            check = judge.check(video, caption, fps)
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


def evaluate_pipeline(pipeline: TextToVideo, judge: Judge, config: EvalConfig, out_dir: str | Path | None = None,
                      progress: Callable[[int], None] | None = None,
                      table: Callable[[dict[str, dict]], str] | None = None) -> dict[str, dict]:
    """Scores per split (and per condition, size and rate when there are several, see the file header); with
    `out_dir`, also eval.json (scores + every video's checks), eval.txt (`table` of the scores) and sample GIFs."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    conditions = config.conditions(pipeline)
    checks: dict[tuple[str, tuple[int, int], float], list[Check]] = {}
    records: list[dict] = []
    for split, (size, fps) in product(config.splits, conditions):
        tag = f"_{condition_name(size, fps).replace(' ', '_')}" if len(conditions) > 1 else ""
        checks[split, size, fps], condition_records = check_split(pipeline, judge, split, config, size, fps, out,
                                                                progress, tag)
        records += condition_records

    def pooled(split: str | None = None, size: tuple[int, int] | None = None, fps: float | None = None) -> dict:
        """The score of every video of the split, size and rate given (None: any)."""
        return judge.score([check for (s, z, r), found in checks.items() for check in found
                            if split in (None, s) and size in (None, z) and fps in (None, r)])

    reports = {split: pooled(split=split) for split in config.splits}
    if len(conditions) > 1:
        reports.update({f"{split} {condition_name(size, fps)}": judge.score(found)
                        for (split, size, fps), found in checks.items()})
        reports.update({f"{size[1]}x{size[0]}": pooled(size=size) for size in dict.fromkeys(z for z, _ in conditions)})
        reports.update({f"{fps:g}fps": pooled(fps=fps) for fps in dict.fromkeys(r for _, r in conditions)})
    if out is not None:
        atomic_write_text(out / "eval.json", json.dumps({"scores": reports, "videos": records}, indent=2))
        if table is not None:
            atomic_write_text(out / "eval.txt", table(reports) + "\n")
    return reports


def format_table(reports: dict[str, dict], columns: Sequence[str], stderr: str | None = "overall") -> str:
    """Plain-text table: a row per split (or condition), the `columns` as % (a None is '-'); with `stderr`, that
    column's standard error (`<stderr>_stderr`, ± points: two runs differing by less than about twice it are not
    told apart); then n."""
    names: list[Any] = [*columns, *([f"{stderr}_stderr"] if stderr else [])]
    width = max([5, *map(len, reports)])
    lines = [f"{'split':<{width}} " + " ".join(f"{'±' if c.endswith('_stderr') else c:>9}" for c in names)
             + f" {'n':>6}"]
    for split, report in reports.items():
        cells = ["-" if report.get(c) is None else f"{100 * report[c]:.1f}" for c in names]
        lines.append(f"{split:<{width}} " + " ".join(f"{c:>9}" for c in cells) + f" {report.get('num', 0):>6}")
    return "\n".join(lines)
