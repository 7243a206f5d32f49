"""`t2v recipe run stills`: the stills recipe end to end (the stages and OUT's layout: t2v.recipes.run_stages): the
tokenizer trained at 128×128 on camera motion over the seen photographs, 4,000 seen and 256 held-out clips drawn
and encoded, the generator trained on their codes, the pipeline scored by the motion check (256 videos per split).

The generator's clips are 64×64 by default (the tokenizer is convolutional: it codes any size its strides divide):
5 latent frames of 8×8 codes, 320 a clip, where a 128×128 clip has 1,280 and would cost a 2-core CPU's
generator about 4× the time per clip; the `size128` variant trains and scores at 128×128. No long clips: a
129-frame clip is 2,112 codes at 64×64. `quick` (`--quick`) shortens every stage: the recipe's `quick` stage
variants, 600 + 64 clips, 64 videos scored per split.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from t2v.recipes import choose, stills
from t2v.recipes.evaluation import EvalConfig
from t2v.recipes.run_stages import LAYOUT, RecipeRunConfig, run_stages
from t2v.recipes.stills import generator_config, tokenizer_config
from t2v.recipes.stills.dataset import FPS
from t2v.recipes.stills.evaluate import evaluate_pipeline, format_table

__all__ = ["LAYOUT", "RecipeRunConfig", "run_config", "run_recipe", "VARIANTS"]
GENERATOR_SIZE = (64, 64)  # (H, W) of the generator's clips by default


def run_config(quick: bool, variant: str = "default") -> RecipeRunConfig:
    """The recipe's configs: the variant `variant` (`VARIANTS`) of the default run, shortened first by `quick`."""
    derive = choose(VARIANTS, "run stills", variant)
    config = RecipeRunConfig(tokenizer_config(), generator_config(), num_clips=4000, long_clips=0, heldout_clips=256,
                             eval=EvalConfig(num=256, batch=32), sizes=[GENERATOR_SIZE], fps=FPS)
    return derive(quick_run(config) if quick else config)


def quick_run(config: RecipeRunConfig) -> RecipeRunConfig:
    """A run of minutes that trades quality: the recipe's `quick` stage configs, 600 clips and 64 held-out ones,
    64 videos scored per split."""
    quick = stills.VARIANTS["quick"]
    return dataclasses.replace(config, tokenizer=quick.tokenizer(config.tokenizer),
                               generator=quick.generator(config.generator), num_clips=600, heldout_clips=64,
                               eval=dataclasses.replace(config.eval, num=64))


def default(config: RecipeRunConfig) -> RecipeRunConfig:
    """The generator on 64x64 clips of 17 frames at 8 fps (the tokenizer trains at 128x128)."""
    return config


def size128(config: RecipeRunConfig) -> RecipeRunConfig:
    """The generator on 128x128 clips (1,280 codes a clip: about 4x the generator's time per clip)."""
    return dataclasses.replace(config, sizes=[(128, 128)])


VARIANTS = {"default": default, "size128": size128}


def run_recipe(out: str | Path, config: RecipeRunConfig, log: Callable[[str], None] = print, device: str = "auto",
               dtype: str = "auto") -> dict[str, dict]:
    """Run every stage into `out` (t2v.recipes.run_stages.run_stages) and score the pipeline with the motion
    check; returns the scores per split."""
    return run_stages("stills", out, config, evaluate_pipeline, format_table, log, device, dtype)
