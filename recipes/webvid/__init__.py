"""The `webvid` recipe: WebVid-2M/10M stock-footage clips with their alt-text captions.

Prepare with `t2v data prepare webvid data/webvid data/webvid/index.jsonl` (README.md). Typed config functions for
each stage, from the shared real-footage configs (../footage.py); `quick` derives from the default.
"""
from __future__ import annotations

from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, footage
from t2v.tokenizer.config import TokenizerTrainConfig

NAME = "webvid"
DATA_DIR = "data/webvid"
INDEX = f"{DATA_DIR}/index.jsonl"
TOKENS_DIR = "data/webvid-tokens"
TRAIN_SPLIT, EVAL_SPLIT = "train", "val"
SAMPLE_PROMPTS = [
    "aerial view of a beach at sunset",
    "a dog running on green grass",
    "timelapse of clouds over mountains",
]
VARIANTS = footage.VARIANTS


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index.

    WebVid is large and varied (2.5M clips in WebVid-2M): 200,000 steps.
    """
    config = footage.tokenizer_config(NAME, INDEX, TRAIN_SPLIT, EVAL_SPLIT, steps=200_000)
    return choose(VARIANTS, NAME, variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this recipe's shards.

    Captions are long alt-texts (~12 words, up to ~50): a 16,000-piece vocabulary and 48 text ids;
    300,000 steps.
    """
    config = footage.generator_config(NAME, TOKENS_DIR, TRAIN_SPLIT, EVAL_SPLIT, text_vocab_size=16_000,
                                      max_text_len=48, steps=300_000, sample_prompts=SAMPLE_PROMPTS)
    return choose(VARIANTS, NAME, variant).generator(config)
