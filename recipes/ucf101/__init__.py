"""The `ucf101` recipe: UCF-101's 13,320 clips of 101 human actions; the caption is the action's name in words.

Prepare with `t2v data prepare ucf101 data/ucf101 data/ucf101/index.jsonl` (README.md). Typed config functions for
each stage, from the shared real-footage configs (../footage.py); `quick` derives from the default.
"""
from __future__ import annotations

from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, footage
from t2v.tokenizer.config import TokenizerTrainConfig

NAME = "ucf101"
DATA_DIR = "data/ucf101"
INDEX = f"{DATA_DIR}/index.jsonl"
TOKENS_DIR = "data/ucf101-tokens"
TRAIN_SPLIT, EVAL_SPLIT = "train", "test"
SAMPLE_PROMPTS = ["apply eye makeup", "playing guitar", "horse riding", "surfing"]
VARIANTS = footage.VARIANTS


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index.

    UCF-101 is small (9.5k training clips of split 1): 50,000 steps are ~170 passes over its clips.
    """
    config = footage.tokenizer_config(NAME, INDEX, TRAIN_SPLIT, EVAL_SPLIT, steps=50_000)
    return choose(VARIANTS, NAME, variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this recipe's shards.

    Captions are 101 class names of at most 4 words: a 512-piece target (BPE stops below it) and 8 text ids;
    30,000 steps, as the 9.5k training clips are few.
    """
    config = footage.generator_config(NAME, TOKENS_DIR, TRAIN_SPLIT, EVAL_SPLIT, text_vocab_size=512,
                                      max_text_len=8, steps=30_000, sample_prompts=SAMPLE_PROMPTS)
    return choose(VARIANTS, NAME, variant).generator(config)
