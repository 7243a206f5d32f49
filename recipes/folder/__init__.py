"""The `folder` recipe: any folder of videos with captions (a sidecar .txt per video, or a csv/jsonl file).

Prepare with `t2v data prepare folder data/folder data/folder/index.jsonl` (README.md). The shared real-footage
configs (../footage.py) with general defaults: 100,000 steps of each stage (shorten them for a small folder with
`--set steps=N`); free-form captions (an 8,000-piece vocabulary, fewer if the captions are few, and 32 text ids).
Every row is in split "train" unless the caption file says otherwise, so there is no held-out evaluation by
default: give one with `--set data.eval_split=NAME` (the paths can be changed with `--set data.index=…` /
`data.shards=…`).
"""
from __future__ import annotations

from t2v.recipes.footage import VARIANTS, Footage

RECIPE = Footage("folder", train_split="train", eval_split=None, tokenizer_steps=100_000, generator_steps=100_000,
                 text_vocab_size=8_000, max_text_len=32)
tokenizer_config, generator_config = RECIPE.tokenizer_config, RECIPE.generator_config
__all__ = ["RECIPE", "VARIANTS", "generator_config", "tokenizer_config"]
