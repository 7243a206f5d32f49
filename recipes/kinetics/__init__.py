"""The `kinetics` recipe: Kinetics-400/600/700 10-second YouTube clips; the caption is the action label.

Prepare with `t2v data prepare kinetics data/kinetics data/kinetics/index.jsonl` (README.md). Typed config
functions for each stage, from the shared real-footage configs (../footage.py); `quick` derives from the default.
"""
from __future__ import annotations

from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, footage
from t2v.tokenizer.config import TokenizerTrainConfig

NAME = "kinetics"
DATA_DIR = "data/kinetics"
INDEX = f"{DATA_DIR}/index.jsonl"
TOKENS_DIR = "data/kinetics-tokens"
TRAIN_SPLIT, EVAL_SPLIT = "train", "val"
SAMPLE_PROMPTS = ["riding a bike", "playing guitar", "surfing water", "dancing ballet"]
VARIANTS = footage.VARIANTS


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index.

    Kinetics-700 has ~540k training clips: 100,000 steps.
    """
    config = footage.tokenizer_config(NAME, INDEX, TRAIN_SPLIT, EVAL_SPLIT, steps=100_000)
    return choose(VARIANTS, NAME, variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this recipe's shards.

    Captions are 400–700 labels of a few words (a 1,000-piece target, 12 text ids); 100,000 steps.
    """
    config = footage.generator_config(NAME, TOKENS_DIR, TRAIN_SPLIT, EVAL_SPLIT, text_vocab_size=1_000,
                                      max_text_len=12, steps=100_000, sample_prompts=SAMPLE_PROMPTS)
    return choose(VARIANTS, NAME, variant).generator(config)
