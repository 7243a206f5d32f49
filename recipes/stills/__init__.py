"""The `stills` recipe (recipes/stills/README.md): camera motion over the photographs scikit-image and scikit-learn
ship, a tokenizer for natural video sized for a 2-core CPU, and a generator on its codes.

Typed config functions for each stage; its variants (`VARIANTS`) derive from the default by copy-and-modify. This
module imports nothing heavy: the registry imports every recipe's `__init__`.
"""
from __future__ import annotations

import dataclasses
import math

from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.generator.config import preset as generator_preset
from t2v.recipes import DEFAULT, Variant, choose
from t2v.tokenizer.config import DataConfig, LossConfig, OptimConfig, QuantizerConfig, TokenizerTrainConfig, preset

TOKENS_DIR = "data/stills-tokens"
DRAW_CLIPS = "t2v.recipes.stills.dataset:draw_clips"  # the tokenizer trains on clips drawn afresh at every step


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """Tokenizer for 17-frame 128×128 stills clips at 4×8×8 compression (a 5×16×16 latent: 1,280 codes a clip),
    sized to train in under 60 minutes on a 2-core CPU.

    Model: a 2×2 patch stem, then levels of 32, 64 and 128 channels with one res block each (spatial stride 8,
    time stride 4). FSQ levels (8, 8, 8, 6, 5): 15,360 codes (13.9 bits a code) rather than 64,000: the held-out
    evaluation's 64 clips hold 81,920 codes, which could use at most about 72% of 64,000 codes even if they were
    uniform, and a 4× smaller vocabulary keeps the generator's embedding and output layer small on a CPU (the
    `codes64k` variant has the 64,000). Loss: L1 + L2 + the gradient difference (L1 between the frames' spatial
    gradients, weight 1: natural pictures' edges and textures blur without it); no salience weighting (it is for
    objects on black), no LPIPS (its AlexNet weights are not on disk here) and no GAN. Clips are drawn in memory
    at every step (`data.drawn`): a new clip for every item, from the seen photographs only; evaluation on 64
    clips of the held-out ones. Two phases, each with its own warmup and cosine: 900 steps of 16 single frames at
    lr 5e-4, then 280 steps of 4 clips at 2e-4 (the clip phase starts from the image weights inflated to 3D).
    Measured on the 2-core CPU this was written on (2026-12-07, other work sharing it at times): 1.0 s an image step,
    6.5 s a clip step (the quieter steps of short runs; busy, up to 17 s), so about 15 + 30 minutes of steps and
    two evaluations of about a minute each: under 50 minutes when the machine is not shared.
    """
    config = TokenizerTrainConfig(
        name="stills",
        model=preset("tiny", patch_size=2, spatial_stride=8, temporal_stride=4, channels=(32, 64, 128),
                     num_res_blocks=1, quantizer=QuantizerConfig(fsq_levels=(8, 8, 8, 6, 5))),
        loss=LossConfig(l1_weight=1.0, l2_weight=1.0, gradient_weight=1.0, salience_weight=0.0,
                        perceptual_weight=0.0, adversarial_weight=0.0),
        data=DataConfig(drawn=DRAW_CLIPS, train_split="seen", eval_split="heldout", num_frames=17, size=(128, 128),
                        eval_clips=64, num_workers=1),
        optim=OptimConfig(lr=5e-4, clip_lr=2e-4, discriminator_lr=1e-4, warmup_steps=100, min_lr_ratio=0.1),
        steps=1180, batch_size=4, image_steps=900, image_batch_size=16, eval_every=590, checkpoint_every=200,
    )
    return choose(VARIANTS, "stills", variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """Generator for the stills token shards (`TOKENS_DIR`: clips encoded by the tokenizer, e.g. by `t2v recipe run
    stills`, whose clips are 64×64 by default: 5 latent frames of 8×8 codes, 320 video ids a clip, after a caption
    of up to 40 text ids: a 128-piece caption vocabulary spells two photo names, or a held-out one, in up to 38).

    The tiny preset (4 layers, 256 wide), code vectors factorized over the tokenizer's FSQ digits (`code_levels`),
    16 sequences a step (about 5,600 ids), 900 steps (`quick`: 300). The text vocabulary size is a placeholder:
    training sets it from the caption tokenizer it trains, and the size and rate tables from the shards.
    """
    levels = tokenizer_config(variant).model.quantizer.fsq_levels
    config = GeneratorTrainConfig(
        name="stills",
        model=generator_preset("tiny", max_text_len=40, code_levels=list(levels), codebook_size=math.prod(levels)),
        data=GeneratorDataConfig(shards=TOKENS_DIR, train_split="seen", eval_split="heldout", caption_dropout=0.1,
                                 text_vocab_size=128, max_text_len=40),
        optim=GeneratorOptimConfig(lr=1e-3, weight_decay=0.05, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0),
        steps=900, batch_size=16, grad_accum=1, zero_stage=0, log_every=10, checkpoint_every=300,
        sample_every=450, sample_prompts=["the camera pans left over a cup of coffee",
                                          "the camera zooms in on a rocket"],
    )
    return choose(VARIANTS, "stills", variant).generator(config)


def quick_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`quick`: 230 steps in all: 200 of single frames, 30 of clips (about 8 minutes: a check of the setup)."""
    return dataclasses.replace(config, steps=230, image_steps=200, eval_every=230, checkpoint_every=115,
                               optim=dataclasses.replace(config.optim, warmup_steps=20))


def quick_generator(config: GeneratorTrainConfig) -> GeneratorTrainConfig:
    """`quick`: 300 steps, 20 of them warmup."""
    return dataclasses.replace(config, steps=300, checkpoint_every=150, sample_every=300,
                               optim=dataclasses.replace(config.optim, warmup_steps=20))


def codes64k_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`codes64k`: FSQ levels (8, 8, 8, 5, 5, 5), 64,000 codes (16 bits a code)."""
    model = dataclasses.replace(config.model, quantizer=QuantizerConfig(fsq_levels=(8, 8, 8, 5, 5, 5)))
    return dataclasses.replace(config, name=f"{config.name}-codes64k", model=model)


def size64_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`size64`: 17-frame 64×64 clips (a 5×8×8 latent, 320 codes a clip), the same model: 3,000 image steps and
    1,200 clip steps, measured at 0.3 s and 1.4 s a step on this 2-core CPU (2026-12-07): about 45 minutes."""
    data = dataclasses.replace(config.data, size=(64, 64))
    return dataclasses.replace(config, name=f"{config.name}-64", data=data, steps=4200, image_steps=3000,
                               eval_every=2100, checkpoint_every=600)


VARIANTS = {
    "default": DEFAULT,
    "quick": Variant("minutes on a 2-core CPU: 230 tokenizer and 300 generator steps, a check of the setup",
                     quick_tokenizer, quick_generator),
    "codes64k": Variant("a codebook of 64,000 FSQ codes (8, 8, 8, 5, 5, 5) instead of 15,360", codes64k_tokenizer),
    "size64": Variant("a tokenizer of 17-frame 64×64 clips (5×8×8 codes), 3,000 + 1,200 steps", size64_tokenizer),
}
