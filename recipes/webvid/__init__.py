"""The `webvid` recipe: WebVid-2M/10M stock-footage clips with their alt-text captions.

Prepare with `t2v data prepare webvid data/webvid data/webvid/index.jsonl` (README.md). The shared real-footage
configs (../footage.py) with: 200,000 tokenizer steps (large and varied: 2.5M clips in WebVid-2M); long alt-texts
(~12 words, up to ~50: a 16,000-piece vocabulary and 48 text ids); 300,000 generator steps.
"""
from __future__ import annotations

from t2v.recipes.footage import VARIANTS, Footage

RECIPE = Footage("webvid", train_split="train", eval_split="val", tokenizer_steps=200_000, generator_steps=300_000,
                 text_vocab_size=16_000, max_text_len=48,
                 sample_prompts=("aerial view of a beach at sunset", "a dog running on green grass",
                                 "timelapse of clouds over mountains"))
tokenizer_config, generator_config = RECIPE.tokenizer_config, RECIPE.generator_config
__all__ = ["RECIPE", "VARIANTS", "generator_config", "tokenizer_config"]
