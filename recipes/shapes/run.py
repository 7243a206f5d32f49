"""`t2v recipe run shapes`: every stage of the project on the shapes dataset, from nothing to a scored pipeline
(the stages and OUT's layout: t2v.recipes.run_stages).

Variants (`VARIANTS`, named derivations of the run config): `default` (64×64 clips at 8 fps) and `multi`: clips at
64×64 and 96×64 (WxH), each at 8 and 16 fps (the same motion per second); the tokenizer is the default one, the
shards hold two latent grids, the generator learns the four (size, rate) conditions and the evaluation
scores each. `quick` (`--quick`, the recipe's `quick` stage variant and less data) shortens either. The dataset is
specified in recipes/shapes/README.md; the wall times and scores of both variants are in docs/RESULTS.md ("The
shapes recipe end to end", "Several sizes and frame rates").
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from t2v.recipes import choose, shapes
from t2v.recipes.run_stages import LAYOUT, RecipeRunConfig, run_stages
from t2v.recipes.shapes import generator_config, tokenizer_config
from t2v.recipes.shapes.evaluate import evaluate_pipeline
from t2v.recipes.shapes.verify import format_table

__all__ = ["LAYOUT", "RecipeRunConfig", "run_config", "run_recipe", "VARIANTS"]
MULTI_SIZES = [(64, 64), (64, 96)]  # (H, W): 64x64 and 96x64 (WxH)
MULTI_RATES = [8.0, 16.0]


def run_config(quick: bool, variant: str = "default") -> RecipeRunConfig:
    """The recipe's configs: the variant `variant` (`VARIANTS`) of the default run, shortened first by `quick`."""
    derive = choose(VARIANTS, "run shapes", variant)
    config = RecipeRunConfig(tokenizer_config(), generator_config())
    return derive(quick_run(config) if quick else config)


def quick_run(config: RecipeRunConfig) -> RecipeRunConfig:
    """A run of minutes that trades quality: the recipe's `quick` stage configs, 600 clips, no long ones and 64
    held-out ones, 64 videos scored per split."""
    quick = shapes.VARIANTS["quick"]
    return dataclasses.replace(config, tokenizer=quick.tokenizer(config.tokenizer),
                               generator=quick.generator(config.generator), num_clips=600, long_clips=0,
                               heldout_clips=64, eval=dataclasses.replace(config.eval, num=64, save_videos=4))


def default(config: RecipeRunConfig) -> RecipeRunConfig:
    """64x64 clips at 8 fps."""
    return config


def multi(config: RecipeRunConfig) -> RecipeRunConfig:
    """Clips at 64x64 and 96x64 (WxH), each at 8 and 16 fps; the pipeline generates each size and rate."""
    return multi_config(config)


def frame(config: RecipeRunConfig) -> RecipeRunConfig:
    """The default run with a generator that predicts each latent frame in one forward pass."""
    return replace_generator(config, "frame")


def masked(config: RecipeRunConfig) -> RecipeRunConfig:
    """The default run with a generator that draws each latent frame in 2 passes, masked (MaskGIT-style)."""
    return replace_generator(config, "masked")


def replace_generator(config: RecipeRunConfig, variant: str) -> RecipeRunConfig:
    """`config` with the generator of the recipe's stage variant `variant`."""
    return dataclasses.replace(config, generator=shapes.VARIANTS[variant].generator(config.generator))


VARIANTS = {"default": default, "multi": multi, "frame": frame, "masked": masked}


def multi_config(config: RecipeRunConfig, sizes: list[tuple[int, int]] | None = None,
                 rates: list[float] | None = None) -> RecipeRunConfig:
    """`config` on clips of several sizes and rates (default: 64x64 and 96x64 WxH, 8 and 16 fps): the tokenizer
    is the default one (convolutional: it codes any size its strides divide, and slower motion), the generator's
    size and rate tables come from the shards, and the evaluation scores every (size, rate)."""
    sizes, rates = sizes or MULTI_SIZES, rates or MULTI_RATES
    tokenizer = dataclasses.replace(config.tokenizer, name="shapes-multi")
    generator = dataclasses.replace(config.generator, name="shapes-multi")
    evaluation = dataclasses.replace(config.eval, sizes=list(sizes), rates=list(rates))
    return dataclasses.replace(config, tokenizer=tokenizer, generator=generator, eval=evaluation, sizes=list(sizes),
                               rates=list(rates))


def run_recipe(out: str | Path, config: RecipeRunConfig, log: Callable[[str], None] = print, device: str = "auto",
               dtype: str = "auto") -> dict[str, dict]:
    """Run every stage into `out` (t2v.recipes.run_stages.run_stages) and score the pipeline with the shapes
    verifier; returns the scores per split."""
    return run_stages("shapes", out, config, evaluate_pipeline, format_table, log, device, dtype)
