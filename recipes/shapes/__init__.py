"""The `shapes` recipe (recipes/shapes/README.md): synthetic captioned clips that train on a CPU in minutes.

Typed config functions for each stage; its variants (`VARIANTS`: `quick`) derive from the default by
copy-and-modify.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.generator.config import preset as generator_preset
from t2v.recipes import DEFAULT, Variant, choose
from t2v.tokenizer.config import DataConfig, LossConfig, OptimConfig, QuantizerConfig, TokenizerTrainConfig, preset

TOKENS_DIR = "data/shapes-tokens"
DRAW_CLIPS = "t2v.recipes.shapes.dataset:draw_clips"  # the tokenizer trains on clips drawn afresh at every step


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """Tokenizer for 17-frame 64×64 shapes clips, sized for a 2-core CPU: the tiny preset with a 4×4 patch stem and
    spatial stride 16 (a 4×4 latent grid: 80 codes a clip), FSQ of 1,000 codes.

    Its clips are drawn in memory at every step (`data.drawn`): no files, a new clip for every item. The perceptual
    loss is off (flat colours on black): L1 + L2, each pixel weighted by its salience (1 + 9 on the object), without
    which the codes learn the object's colour only after 1,000+ steps. Two phases, each with its own warmup and
    cosine: 1,500 steps of 16 single frames at lr 3e-4 (colours and shapes, at a third of a clip step's cost), then
    300 steps of 4 clips at 1e-4 (motion; the clip phase starts from the image weights inflated to 3D). What these
    settings and their alternatives measured is in docs/RESULTS.md ("Faithful shapes").
    """
    config = TokenizerTrainConfig(
        name="shapes",
        model=preset("tiny", patch_size=4, spatial_stride=16, channels=(32, 64, 128),
                     quantizer=QuantizerConfig(fsq_levels=(8, 5, 5, 5))),
        loss=LossConfig(l2_weight=1.0, salience_weight=9.0, perceptual_weight=0.0, adversarial_weight=0.0),
        data=DataConfig(drawn=DRAW_CLIPS, train_split="seen", eval_split="heldout", num_frames=17, size=(64, 64),
                        eval_clips=64, num_workers=1),
        optim=OptimConfig(lr=3e-4, clip_lr=1e-4, discriminator_lr=1e-4, warmup_steps=100, min_lr_ratio=0.1),
        steps=1800, batch_size=4, image_steps=1500, image_batch_size=16, eval_every=600, checkpoint_every=300,
    )
    return choose(VARIANTS, "shapes", variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """Generator for the shapes token shards (5×4×4 codes a clip: 95-id sequences), sized for a 2-core CPU.

    The tiny preset (4 layers, 256 wide, 4M parameters), 32 sequences a step (3,040 ids), 800 steps (`quick`:
    240): about 15 minutes on a 2-core CPU. Sequences are windows of 5 latent frames (a 17-frame clip): whole short
    clips, and windows at random offsets of the recipe's long clips, so the model learns to continue. Code vectors
    are factorized over the tokenizer's FSQ digits (`code_levels`). `data.window_weight` and `data.context_noise`
    stay off. What these settings and their alternatives measured is in docs/RESULTS.md ("Shapes recipe settings",
    "Text to video on shapes", "Videos of any length", "Faithful shapes"). The text vocabulary size is a
    placeholder: training sets it from the caption tokenizer it trains, and the size and rate tables from the
    shards.
    """
    levels = tokenizer_config(variant).model.quantizer.fsq_levels  # code vectors factorized over the FSQ digits
    config = GeneratorTrainConfig(
        name="shapes",
        model=generator_preset("tiny", max_text_len=12, code_levels=list(levels), codebook_size=math.prod(levels)),
        data=GeneratorDataConfig(shards=TOKENS_DIR, train_split="seen", eval_split="heldout", caption_dropout=0.1,
                                 text_vocab_size=128, max_text_len=12, window=5),
        optim=GeneratorOptimConfig(lr=1e-3, weight_decay=0.05, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0),
        steps=800, batch_size=32, grad_accum=1, zero_stage=0, log_every=10, checkpoint_every=400,
        sample_every=400, sample_prompts=["a red circle moving right slowly", "a blue square moving up quickly"],
    )
    return choose(VARIANTS, "shapes", variant).generator(config)


def quick_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`quick`: 600 steps in all: 500 of single frames, 100 of clips."""
    return dataclasses.replace(config, steps=600, image_steps=500, eval_every=300, checkpoint_every=300)


def quick_generator(config: GeneratorTrainConfig) -> GeneratorTrainConfig:
    """`quick`: 240 steps, 20 of them warmup."""
    return dataclasses.replace(config, steps=240, checkpoint_every=120, sample_every=240,
                               optim=dataclasses.replace(config.optim, warmup_steps=20))


def parallel_generator(decoding: str) -> Callable[[GeneratorTrainConfig], GeneratorTrainConfig]:
    """The generator trained for `decoding` ("frame" or "masked": several codes of a latent frame per forward pass)
    at the token-by-token one's training compute: its sequences hold each latent frame twice (clean, then as a
    query: 176 ids instead of 96 for a 5-frame window of 4×4 codes), so a step takes 17 sequences instead of 32,
    about the same ids per step."""
    def derive(config: GeneratorTrainConfig) -> GeneratorTrainConfig:
        model = dataclasses.replace(config.model, decoding=decoding, frame_passes=2)
        return dataclasses.replace(config, name=f"{config.name}-{decoding}", model=model,
                                   batch_size=max(1, round(config.batch_size * 96 / 176)))
    return derive


VARIANTS = {
    "default": DEFAULT,
    "quick": Variant("minutes on a 2-core CPU: 400 tokenizer and 240 generator steps, rougher videos",
                     quick_tokenizer, quick_generator),
    "frame": Variant("a generator that predicts each latent frame in one forward pass (next-frame prediction)",
                     generator=parallel_generator("frame")),
    "masked": Variant("a generator that draws each latent frame in 2 forward passes (masked, MaskGIT-style)",
                      generator=parallel_generator("masked")),
}
