"""The `kinetics` recipe: Kinetics-400/600/700 10-second YouTube clips; the caption is the action label.

Prepare with `t2v data prepare kinetics data/kinetics data/kinetics/index.jsonl` (README.md). The shared
real-footage configs (../footage.py) with: 100,000 tokenizer steps (Kinetics-700 has ~540k training clips);
400–700 labels of a few words (a 1,000-piece target, 12 text ids); 100,000 generator steps.
"""
from __future__ import annotations

from t2v.recipes.footage import VARIANTS, Footage

RECIPE = Footage("kinetics", train_split="train", eval_split="val", tokenizer_steps=100_000, generator_steps=100_000,
                 text_vocab_size=1_000, max_text_len=12,
                 sample_prompts=("riding a bike", "playing guitar", "surfing water", "dancing ballet"))
tokenizer_config, generator_config = RECIPE.tokenizer_config, RECIPE.generator_config
__all__ = ["RECIPE", "VARIANTS", "generator_config", "tokenizer_config"]
