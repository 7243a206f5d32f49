"""The `folder` recipe: any folder of videos with captions (a sidecar .txt per video, or a csv/jsonl file).

Prepare with `t2v data prepare folder data/folder data/folder/index.jsonl` (README.md). Typed config functions for
each stage, from the shared real-footage configs (../footage.py); `quick` derives from the default. Every row is
in split "train" unless the caption file says otherwise, so there is no held-out evaluation by default: give
one with `--set data.eval_split=NAME` (the paths can be changed with `--set data.index=…` / `data.shards=…`).
"""
from __future__ import annotations

from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes import choose, footage
from t2v.tokenizer.config import TokenizerTrainConfig

NAME = "folder"
DATA_DIR = "data/folder"
INDEX = f"{DATA_DIR}/index.jsonl"
TOKENS_DIR = "data/folder-tokens"
TRAIN_SPLIT, EVAL_SPLIT = "train", None
SAMPLE_PROMPTS = []
VARIANTS = footage.VARIANTS


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index.

    A general default: 100,000 steps; shorten them for a small folder with `--set steps=N`.
    """
    config = footage.tokenizer_config(NAME, INDEX, TRAIN_SPLIT, EVAL_SPLIT, steps=100_000)
    return choose(VARIANTS, NAME, variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this recipe's shards.

    Free-form captions: an 8,000-piece vocabulary (fewer if the captions are few) and 32 text ids;
    100,000 steps.
    """
    config = footage.generator_config(NAME, TOKENS_DIR, TRAIN_SPLIT, EVAL_SPLIT, text_vocab_size=8_000,
                                      max_text_len=32, steps=100_000, sample_prompts=SAMPLE_PROMPTS)
    return choose(VARIANTS, NAME, variant).generator(config)
