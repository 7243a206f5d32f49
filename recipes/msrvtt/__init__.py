"""The `msrvtt` recipe: MSR-VTT's 10,000 web clips with ~20 human captions each (200,000 in all).

Prepare with `t2v data prepare msrvtt data/msrvtt data/msrvtt/index.jsonl` (README.md). The shared real-footage
configs (../footage.py) with: 60,000 tokenizer steps (6,513 training videos of 10–30 s); sentences of ~9 words (a
4,000-piece vocabulary, 24 text ids); 50,000 generator steps.
"""
from __future__ import annotations

from t2v.recipes.footage import VARIANTS, Footage

RECIPE = Footage("msrvtt", train_split="train", eval_split="val", tokenizer_steps=60_000, generator_steps=50_000,
                 text_vocab_size=4_000, max_text_len=24,
                 sample_prompts=("a man is playing a guitar", "a woman is cooking in a kitchen",
                                 "a car is driving on a road"))
tokenizer_config, generator_config = RECIPE.tokenizer_config, RECIPE.generator_config
__all__ = ["RECIPE", "VARIANTS", "generator_config", "tokenizer_config"]
