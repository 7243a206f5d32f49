"""The `msrvtt` recipe: MSR-VTT's 10,000 web clips with ~20 human captions each (200,000 in all).

Prepare with `t2v data prepare msrvtt data/msrvtt data/msrvtt/index.jsonl` (README.md). Typed config functions for
each stage, from the shared real-footage configs (../footage.py); `quick` derives from the default.
"""
from __future__ import annotations

from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, footage
from t2v.tokenizer.config import TokenizerTrainConfig

NAME = "msrvtt"
DATA_DIR = "data/msrvtt"
INDEX = f"{DATA_DIR}/index.jsonl"
TOKENS_DIR = "data/msrvtt-tokens"
TRAIN_SPLIT, EVAL_SPLIT = "train", "val"
SAMPLE_PROMPTS = ["a man is playing a guitar", "a woman is cooking in a kitchen", "a car is driving on a road"]
VARIANTS = footage.VARIANTS


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index.

    MSR-VTT has 6,513 training videos of 10–30 s: 60,000 steps.
    """
    config = footage.tokenizer_config(NAME, INDEX, TRAIN_SPLIT, EVAL_SPLIT, steps=60_000)
    return choose(VARIANTS, NAME, variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this recipe's shards.

    Captions are sentences of ~9 words (a 4,000-piece vocabulary, 24 text ids); 50,000 steps.
    """
    config = footage.generator_config(NAME, TOKENS_DIR, TRAIN_SPLIT, EVAL_SPLIT, text_vocab_size=4_000,
                                      max_text_len=24, steps=50_000, sample_prompts=SAMPLE_PROMPTS)
    return choose(VARIANTS, NAME, variant).generator(config)
