"""The `ucf101` recipe: UCF-101's 13,320 clips of 101 human actions; the caption is the action's name in words.

Prepare with `t2v data prepare ucf101 data/ucf101 data/ucf101/index.jsonl` (README.md). The shared real-footage
configs (../footage.py) with: 50,000 tokenizer steps (UCF-101 is small, 9.5k training clips of split 1: ~170 passes
over them); captions of at most 4 words (101 class names: a 512-piece target, BPE stops below it, and 8 text ids);
30,000 generator steps, as the clips are few.
"""
from __future__ import annotations

from t2v.recipes.footage import VARIANTS, Footage

RECIPE = Footage("ucf101", train_split="train", eval_split="test", tokenizer_steps=50_000, generator_steps=30_000,
                 text_vocab_size=512, max_text_len=8,
                 sample_prompts=("apply eye makeup", "playing guitar", "horse riding", "surfing"))
tokenizer_config, generator_config = RECIPE.tokenizer_config, RECIPE.generator_config
__all__ = ["RECIPE", "VARIANTS", "generator_config", "tokenizer_config"]
