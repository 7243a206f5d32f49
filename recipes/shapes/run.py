"""`t2v recipe run shapes`: every stage of the project on the shapes dataset, from nothing to a scored pipeline.

OUT holds one entry per stage (`LAYOUT`, printed by `--dry-run`): data/ (the clips), tokenizer/, tokens/,
generator/, pipeline/ (`t2v generate OUT/pipeline "…"`), eval/, and run.json (each stage's wall time). A stage whose
output is complete is skipped, an interrupted training resumes: running the command again after a crash continues
where it stopped.

Variants (`VARIANTS`, named derivations of the run config): `default` (64×64 clips at 8 fps) and `multi`: clips at
64×64 and 96×64 (WxH), each at 8 and 16 fps (the same motion per second); the tokenizer buckets them by aspect
ratio, the shards hold two latent grids, the generator learns the four (size, rate) conditions and the evaluation
scores each. `quick` (`--quick`, the recipe's `quick` stage variant and less data) shortens either. The dataset is
specified in recipes/shapes/README.md; the wall times and scores of both variants are in docs/RESULTS.md ("The
shapes recipe end to end", "Several sizes and frame rates").
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from t2v.generator.model import VideoGenerator
from t2v.generator.pipeline import PipelineInfo, TextToVideo
from t2v.generator.text import TextTokenizer
from t2v.generator.train import train as train_generator
from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, shapes
from t2v.recipes.shapes import generator_config, tokenizer_config
from t2v.recipes.shapes.dataset import FPS, make_dataset
from t2v.recipes.shapes.evaluate import ShapesEvalConfig, evaluate_pipeline
from t2v.recipes.shapes.verify import format_table
from t2v.core.atomic import atomic_write_text
from t2v.tokenizer.data import read_index, write_index
from t2v.tokenizer.encode import encode_dataset
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.train import train as train_tokenizer
from t2v.tokenizer.config import TokenizerTrainConfig


LAYOUT = {  # OUT/<entry>: what it holds
    "data/": "shapes clips (mp4) + index.jsonl; long/ the long clips; clips.jsonl both, what is encoded",
    "tokenizer/": "the video tokenizer run",
    "tokens/": "the dataset encoded to token shards",
    "generator/": "the generator run (DeepSpeed)",
    "pipeline/": "the TextToVideo directory (`t2v generate OUT/pipeline \"…\"`)",
    "eval/": "eval.json, eval.txt and sample GIFs of seen and held-out captions",
    "run.json": "wall time of each stage",
}
MULTI_SIZES = [(64, 64), (64, 96)]  # (H, W): 64x64 and 96x64 (WxH)
MULTI_RATES = [8.0, 16.0]


@dataclass
class RecipeRunConfig:
    """Every stage's config: the tokenizer's and the generator's (`resolve` sets their paths), the number of
    clips, the long clips the generator also learns from (its windows cut at random offsets: it learns to continue
    videos of any length), the clips' sizes and rates, and the evaluation."""

    tokenizer: TokenizerTrainConfig
    generator: GeneratorTrainConfig
    num_clips: int = 4000
    long_clips: int = 1000
    long_frames: int = 129
    eval: ShapesEvalConfig = field(default_factory=ShapesEvalConfig)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of the clips, in turn; empty: tokenizer's
    rates: list[float] = field(default_factory=list)  # frame rates of the clips, in turn; empty: 8 fps

    def __post_init__(self) -> None:
        if any(min(size) < 1 for size in self.sizes) or any(rate <= 0 for rate in self.rates):
            raise ValueError(f"sizes and rates must be positive, got {self.sizes}, {self.rates}")

    @property
    def clip_sizes(self) -> list[tuple[int, int]]:
        return [tuple(size) for size in self.sizes] or [tuple(self.tokenizer.data.size)]

    @property
    def clip_rates(self) -> list[float]:
        return list(self.rates) or [FPS]

    def resolve(self, out: str | Path) -> RecipeRunConfig:
        """This config with every stage's paths under `out` (`LAYOUT`): the tokenizer trains on out/data's index,
        the generator on out/tokens with the tokenizer of out/tokenizer."""
        out = Path(out)
        tokenizer = dataclasses.replace(self.tokenizer, data=dataclasses.replace(
            self.tokenizer.data, index=str(out / "data" / "index.jsonl")))
        generator = dataclasses.replace(self.generator, tokenizer_dir=str(out / "tokenizer"), data=dataclasses.replace(
            self.generator.data, shards=str(out / "tokens")))
        return dataclasses.replace(self, tokenizer=tokenizer, generator=generator)


def run_config(quick: bool, variant: str = "default") -> RecipeRunConfig:
    """The recipe's configs: the variant `variant` (`VARIANTS`) of the default run, shortened first by `quick`."""
    derive = choose(VARIANTS, "run shapes", variant)
    config = RecipeRunConfig(tokenizer_config(), generator_config())
    return derive(quick_run(config) if quick else config)


def quick_run(config: RecipeRunConfig) -> RecipeRunConfig:
    """A run of minutes that trades quality: the recipe's `quick` stage configs, 600 clips and no long ones, 16
    videos scored per split."""
    quick = shapes.VARIANTS["quick"]
    return dataclasses.replace(config, tokenizer=quick.tokenizer(config.tokenizer),
                               generator=quick.generator(config.generator), num_clips=600, long_clips=0,
                               eval=dataclasses.replace(config.eval, num=16, save_videos=4))


def default(config: RecipeRunConfig) -> RecipeRunConfig:
    """64x64 clips at 8 fps."""
    return config


def multi(config: RecipeRunConfig) -> RecipeRunConfig:
    """Clips at 64x64 and 96x64 (WxH), each at 8 and 16 fps; the pipeline generates each size and rate."""
    return multi_config(config)


VARIANTS = {"default": default, "multi": multi}


def multi_config(config: RecipeRunConfig, sizes: list[tuple[int, int]] | None = None,
                 rates: list[float] | None = None) -> RecipeRunConfig:
    """`config` on clips of several sizes and rates (default: 64x64 and 96x64 WxH, 8 and 16 fps): the tokenizer
    buckets the sizes by aspect ratio, the generator's size and rate tables come from the shards, and the
    evaluation scores every (size, rate)."""
    sizes, rates = sizes or MULTI_SIZES, rates or MULTI_RATES
    tokenizer = dataclasses.replace(config.tokenizer, name="shapes-multi", data=dataclasses.replace(
        config.tokenizer.data, size=tuple(sizes[0]), buckets=list(sizes)))
    generator = dataclasses.replace(config.generator, name="shapes-multi")
    evaluation = dataclasses.replace(config.eval, sizes=list(sizes), rates=list(rates))
    return dataclasses.replace(config, tokenizer=tokenizer, generator=generator, eval=evaluation, sizes=list(sizes),
                               rates=list(rates))


def join_indexes(out_index: Path, indexes: list[Path]) -> Path:
    """One index of the rows of several, with paths relative to `out_index`'s directory."""
    rows = [{**row, "path": os.path.relpath(row["path"], out_index.parent)} for index in indexes
            for row in read_index(index)]
    return write_index(rows, out_index)


def _resumable(run_dir: Path) -> bool:
    """Whether the stage's run directory holds a checkpoint to resume; a run killed before its first checkpoint is
    removed (it is this recipe's own directory and holds nothing a resume could use), so the stage starts again."""
    if (run_dir / "checkpoints" / "latest").is_file():
        return True
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def run_recipe(out: str | Path, config: RecipeRunConfig, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run every stage into `out`; returns the evaluation scores per split.

    1. Make the shapes clips.
    2. Train the video tokenizer (resumes an interrupted run).
    3. Encode the clips to token shards.
    4. Train the generator with DeepSpeed (resumes an interrupted run).
    5. Assemble the pipeline directory.
    6. Generate videos for seen and held-out captions and score them with the verifier.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "run.json"
    timings: dict[str, float] = json.loads(timing_path.read_text()) if timing_path.is_file() else {}

    def stage(name: str, done: bool, work: Callable[[], object]) -> None:
        if done:
            log(f"[{name}] already done, skipped")
            return
        log(f"[{name}] …")
        started = time.time()
        work()
        timings[name] = round(time.time() - started, 1)
        atomic_write_text(timing_path, json.dumps(timings, indent=2))
        log(f"[{name}] done in {timings[name]:.0f} s")

    data, tokenizer_dir, tokens = out / "data", out / "tokenizer", out / "tokens"
    generator_dir, pipeline_dir = out / "generator", out / "pipeline"

    resolved = config.resolve(out)  # the stages' paths under OUT
    tokenizer_cfg, generator_cfg = resolved.tokenizer, resolved.generator
    size, frames = tuple(tokenizer_cfg.data.size), tokenizer_cfg.data.num_frames

    conditions = dict(sizes=config.clip_sizes, rates=config.clip_rates)

    def make_data() -> None:  # overwrite: a dataset of a run killed before clips.jsonl is this stage's own
        indexes = [make_dataset(data, num=config.num_clips, frames=frames, seed=0, overwrite=True, **conditions)]
        if config.long_clips:
            indexes.append(make_dataset(data / "long", num=config.long_clips, frames=config.long_frames, seed=1,
                                        overwrite=True, **conditions))
        join_indexes(data / "clips.jsonl", indexes)

    stage("data", (data / "clips.jsonl").is_file(), make_data)
    stage("tokenizer", "tokenizer" in timings,
          lambda: train_tokenizer(tokenizer_cfg, tokenizer_dir, resume=_resumable(tokenizer_dir)))
    stage("encode", (tokens / "meta.json").is_file(),
          lambda: log(encode_dataset(VideoTokenizer.from_pretrained(tokenizer_dir), data / "clips.jsonl", tokens,
                                     size=size, buckets=tokenizer_cfg.data.buckets).summary()))
    stage("generator", "generator" in timings,
          lambda: train_generator(generator_cfg, generator_dir, resume=_resumable(generator_dir)))

    def assemble() -> None:
        pipeline = TextToVideo(VideoTokenizer.from_pretrained(tokenizer_dir),
                               VideoGenerator.from_pretrained(generator_dir), TextTokenizer.load(generator_dir),
                               PipelineInfo(fps=config.clip_rates[0], size=size, frames=frames))
        pipeline.save_pretrained(pipeline_dir)

    stage("pipeline", (pipeline_dir / "pipeline.json").is_file(), assemble)
    reports: dict[str, dict] = {}

    def evaluate() -> None:
        eval_config = dataclasses.replace(config.eval, frames=frames)
        reports.update(evaluate_pipeline(TextToVideo.from_pretrained(pipeline_dir), eval_config, out / "eval"))

    stage("eval", False, evaluate)
    log(format_table(reports))
    log(f"wall time: {sum(timings.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    return reports

