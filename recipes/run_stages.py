"""Every stage of a recipe end to end, from nothing to a scored pipeline (`t2v recipe run NAME`): the machinery
each recipe's `run` module shares; the recipe supplies its configs and its evaluation.

OUT holds one entry per stage (`LAYOUT`, printed by `--dry-run`): tokenizer/, tokens/, generator/, pipeline/
(`t2v generate OUT/pipeline "…"`), eval/, and run.json (each stage's wall time). No video file is written: the
tokenizer draws its clips in memory at every step (its `data.drawn` function), and the encode stage draws the
generator's with the same function. A stage whose output is complete is skipped, an interrupted training resumes:
running the command again after a crash continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2v.core.atomic import atomic_write_text
from t2v.core.precision import resolve
from t2v.generator.config import GeneratorTrainConfig
from t2v.generator.model import VideoGenerator
from t2v.generator.pipeline import PipelineInfo, TextToVideo
from t2v.generator.text import TextTokenizer
from t2v.generator.train import train as train_generator
from t2v.recipes.evaluation import EvalConfig
from t2v.tokenizer.config import TokenizerTrainConfig
from t2v.tokenizer.drawn import load_draw_function
from t2v.tokenizer.encode import encode_clips
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.train import train as train_tokenizer

LAYOUT = {  # OUT/<entry>: what it holds
    "tokenizer/": "the video tokenizer run",
    "tokens/": "the generator's clips, drawn in memory and encoded to token shards",
    "generator/": "the generator run (DeepSpeed)",
    "pipeline/": "the TextToVideo directory (`t2v generate OUT/pipeline \"…\"`)",
    "eval/": "eval.json, eval.txt and sample GIFs of seen and held-out captions",
    "run.json": "wall time of each stage",
}
Evaluate = Callable[..., dict[str, dict]]  # a recipe's evaluate_pipeline(pipeline, config, out_dir, progress)


@dataclass
class RecipeRunConfig:
    """Every stage's config: the tokenizer's and the generator's (`resolve` sets their paths), the clips the
    generator learns from (drawn in memory by the tokenizer's `data.drawn` function and encoded: `num_clips` of
    seen captions, the long clips whose windows are cut at random offsets so that it learns to continue videos of
    any length, and `heldout_clips` for its held-out loss), the clips' sizes and rates, and the evaluation."""

    tokenizer: TokenizerTrainConfig
    generator: GeneratorTrainConfig
    num_clips: int = 4000
    long_clips: int = 1000
    long_frames: int = 129
    heldout_clips: int = 256
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(num=256))  # videos per split
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of the clips, in turn; empty: tokenizer's
    rates: list[float] = field(default_factory=list)  # frame rates of the clips, in turn; empty: `fps`
    fps: float = 8.0

    def __post_init__(self) -> None:
        if any(min(size) < 1 for size in self.sizes) or any(rate <= 0 for rate in [*self.rates, self.fps]):
            raise ValueError(f"sizes and rates must be positive, got {self.sizes}, {self.rates}, {self.fps}")

    @property
    def clip_sizes(self) -> list[tuple[int, int]]:
        return [tuple(size) for size in self.sizes] or [tuple(self.tokenizer.data.size)]

    @property
    def clip_rates(self) -> list[float]:
        return list(self.rates) or [self.fps]

    def resolve(self, out: str | Path) -> RecipeRunConfig:
        """This config with every stage's paths under `out` (`LAYOUT`): the generator trains on out/tokens with the
        tokenizer of out/tokenizer (the tokenizer draws its clips in memory)."""
        out = Path(out)
        generator = dataclasses.replace(self.generator, tokenizer_dir=str(out / "tokenizer"), data=dataclasses.replace(
            self.generator.data, shards=str(out / "tokens")))
        return dataclasses.replace(self, generator=generator)

    def generator_clips(self) -> tuple[Iterator[tuple[dict, np.ndarray]], int]:
        """The clips the generator learns from and their number: for each (size, rate) condition in turn its share
        of the seen clips, of the held-out ones and of the long ones (one condition at a time, so the encoder
        batches them)."""
        if not self.tokenizer.data.drawn:
            raise ValueError("a recipe run draws its clips with the tokenizer's data.drawn function: set it")
        draw_clips = load_draw_function(self.tokenizer.data.drawn)
        conditions = [(size, rate) for size in self.clip_sizes for rate in self.clip_rates]
        frames = self.tokenizer.data.num_frames
        parts = [(self.num_clips, frames, "seen", 0), (self.heldout_clips, frames, "heldout", 1),
                 (self.long_clips, self.long_frames, "seen", 2)]
        draws, total = [], 0
        for count, length, split, seed in parts:
            for k, (size, rate) in enumerate(conditions):
                share = count // len(conditions) + (k < count % len(conditions))
                if share:
                    draws.append(draw_clips(num=share, frames=length, size=size, fps=rate, split=split,
                                            seed=1000 * seed + k))
                    total += share
        return itertools.chain(*draws), total


def resumable(run_dir: Path) -> bool:
    """Whether the stage's run directory holds a checkpoint to resume; a run killed before its first checkpoint is
    removed (it is this recipe's own directory and holds nothing a resume could use), so the stage starts again."""
    if (run_dir / "checkpoints" / "latest").is_file():
        return True
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def run_stages(name: str, out: str | Path, config: RecipeRunConfig, evaluate: Evaluate,
               table: Callable[[dict[str, dict]], str], log: Callable[[str], None] = print, device: str = "auto",
               dtype: str = "auto") -> dict[str, dict]:
    """Run every stage of recipe `name` into `out`; returns the evaluation scores per split (`evaluate`, the
    recipe's evaluate_pipeline; `table` prints them). The trainers take the launcher's device (CUDA when
    available); the encode stage runs on `device` in fp32 (codes are discrete: a bf16 encoder would move some
    across a rounding boundary), the evaluation on `device` in `dtype` (names as `--device` / `--dtype`).

    1. Train the video tokenizer on clips drawn at every step (resumes an interrupted run).
    2. Draw the generator's clips and encode them to token shards.
    3. Train the generator with DeepSpeed (resumes an interrupted run).
    4. Assemble the pipeline directory.
    5. Generate videos for seen and held-out captions and score them with the recipe's checker.
    """
    where, precision = resolve(device, dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "run.json"
    timings: dict[str, float] = json.loads(timing_path.read_text()) if timing_path.is_file() else {}

    def stage(stage_name: str, done: bool, work: Callable[[], object]) -> None:
        if done:
            log(f"[{stage_name}] already done, skipped")
            return
        log(f"[{stage_name}] …")
        started = time.time()
        work()
        timings[stage_name] = round(time.time() - started, 1)
        atomic_write_text(timing_path, json.dumps(timings, indent=2))
        log(f"[{stage_name}] done in {timings[stage_name]:.0f} s")

    tokenizer_dir, tokens = out / "tokenizer", out / "tokens"
    generator_dir, pipeline_dir = out / "generator", out / "pipeline"

    resolved = config.resolve(out)  # the stages' paths under OUT
    tokenizer_cfg, generator_cfg = resolved.tokenizer, resolved.generator
    size, frames = config.clip_sizes[0], tokenizer_cfg.data.num_frames

    def encode() -> None:
        clips, total = config.generator_clips()
        source = f"{name} clips drawn by {config.tokenizer.data.drawn} (the recipe's encode stage)"
        log(encode_clips(VideoTokenizer.from_pretrained(tokenizer_dir), clips, tokens, source=source,
                         total=total, device=str(where)).summary())

    stage("tokenizer", "tokenizer" in timings,
          lambda: train_tokenizer(tokenizer_cfg, tokenizer_dir, resume=resumable(tokenizer_dir)))
    stage("encode", (tokens / "meta.json").is_file(), encode)
    stage("generator", "generator" in timings,
          lambda: train_generator(generator_cfg, generator_dir, resume=resumable(generator_dir)))

    def assemble() -> None:
        pipeline = TextToVideo(VideoTokenizer.from_pretrained(tokenizer_dir),
                               VideoGenerator.from_pretrained(generator_dir), TextTokenizer.load(generator_dir),
                               PipelineInfo(fps=config.clip_rates[0], size=size, frames=frames))
        pipeline.save_pretrained(pipeline_dir)

    stage("pipeline", (pipeline_dir / "pipeline.json").is_file(), assemble)
    reports: dict[str, dict] = {}

    def evaluate_stage() -> None:
        from tqdm import tqdm

        eval_config = dataclasses.replace(config.eval, frames=frames)
        pipeline = TextToVideo.from_pretrained(pipeline_dir).to(where, precision)
        total = eval_config.num * len(eval_config.splits) * len(eval_config.conditions(pipeline))
        with tqdm(total=total, desc=f"eval {name}", unit="video", dynamic_ncols=True) as bar:  # stderr, as t2v eval's
            reports.update(evaluate(pipeline, eval_config, out / "eval", progress=bar.update))

    stage("eval", False, evaluate_stage)
    log(table(reports))
    log(f"wall time: {sum(timings.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    return reports
