"""The `shapes` recipe (recipes/shapes/README.md): synthetic captioned clips that train on a CPU in minutes.

Typed config functions for each stage; its variants (`VARIANTS`: `quick`) derive from the default by
copy-and-modify.
"""
from __future__ import annotations

import dataclasses
import math

from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.generator.config import preset as generator_preset
from t2v.recipes import DEFAULT, Variant, choose
from t2v.tokenizer.config import DataConfig, LossConfig, OptimConfig, QuantizerConfig, TokenizerTrainConfig, preset

DATA_DIR = "data/shapes"
TOKENS_DIR = "data/shapes-tokens"


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """Tokenizer for 17-frame 64×64 shapes clips, sized for a 2-core CPU: the tiny preset with a 2×2 patch stem
    (its first level runs at 32×32), FSQ sized to this small data's variety (1,000 codes).

    The perceptual loss is off: the clips are flat colours on black; L1 + L2 (whose gradient grows with the
    error, so the few object pixels are not drowned by the black background) + a GAN. Real-footage recipes turn
    LPIPS on (it needs its backbone weights on disk). lr 3e-4. Three phases: 1,200 steps of 16 single frames
    (colours and shapes first); 1,600 steps of 4 clips, the GAN on at 0.05 for the last 400; then a decoder
    fine-tune: 1,200 steps with the encoder frozen and the GAN at 0.1, which sharpens the decoded shapes without
    changing the codes a generator learns. The alternatives tried against these settings, and what each run
    measured, are in docs/RESULTS.md ("Shapes recipe settings", "Tokenizer ceiling on shapes").
    """
    config = TokenizerTrainConfig(
        name="shapes",
        model=preset("tiny", patch_size=2, channels=(32, 64, 128), quantizer=QuantizerConfig(fsq_levels=(8, 5, 5, 5))),
        loss=LossConfig(l2_weight=1.0, perceptual_weight=0.0, adversarial_weight=0.05, discriminator_start=2400),
        data=DataConfig(index=f"{DATA_DIR}/index.jsonl", train_split="seen", eval_split="heldout",
                        num_frames=17, size=(64, 64), eval_clips=64),
        optim=OptimConfig(lr=3e-4, discriminator_lr=1e-4, warmup_steps=100, min_lr_ratio=0.1),
        steps=4000, batch_size=4, image_steps=1200, image_batch_size=16, decoder_steps=1200,
        decoder_adversarial_weight=0.1, eval_every=500, checkpoint_every=250,
    )
    return choose(VARIANTS, "shapes", variant).tokenizer(config)


def generator_config(variant: str = "default") -> GeneratorTrainConfig:
    """Generator for the shapes token shards (5×8×8 codes a clip: 335-id sequences), sized for a 2-core CPU.

    The tiny preset (4 layers, 256 wide, 4M parameters), 8 sequences a step (2,680 ids), 4,000 steps (`quick`:
    240). Sequences are windows of 5 latent frames (a 17-frame clip): whole short clips, and windows at random
    offsets of the recipe's long clips, so the model learns to continue. Code vectors are factorized over the
    tokenizer's FSQ digits (`code_levels`). `data.window_weight` and `data.context_noise` stay off. What these
    settings and their alternatives measured is in docs/RESULTS.md ("Shapes recipe settings", "Text to video on
    shapes", "Videos of any length"). The text vocabulary size is a placeholder: training sets it from the caption
    tokenizer it trains, and the size and rate tables from the shards.
    """
    levels = tokenizer_config(variant).model.quantizer.fsq_levels  # code vectors factorized over the FSQ digits
    config = GeneratorTrainConfig(
        name="shapes",
        model=generator_preset("tiny", max_text_len=12, code_levels=list(levels), codebook_size=math.prod(levels)),
        data=GeneratorDataConfig(shards=TOKENS_DIR, train_split="seen", eval_split="heldout", caption_dropout=0.1,
                                 text_vocab_size=128, max_text_len=12, window=5),
        optim=GeneratorOptimConfig(lr=1e-3, weight_decay=0.05, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0),
        steps=4000, batch_size=8, grad_accum=1, zero_stage=0, log_every=10, checkpoint_every=500,
        sample_every=1000, sample_prompts=["a red circle moving right slowly", "a blue square moving up quickly"],
    )
    return choose(VARIANTS, "shapes", variant).generator(config)


def quick_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`quick`: 400 steps in all: 250 of single frames, 100 of clips (the GAN from step 350), 50 of the decoder
    fine-tune."""
    return dataclasses.replace(config, steps=400, image_steps=250, decoder_steps=50, eval_every=200,
                               checkpoint_every=200, loss=dataclasses.replace(config.loss, discriminator_start=350))


def quick_generator(config: GeneratorTrainConfig) -> GeneratorTrainConfig:
    """`quick`: 240 steps, 20 of them warmup."""
    return dataclasses.replace(config, steps=240, checkpoint_every=120, sample_every=240,
                               optim=dataclasses.replace(config.optim, warmup_steps=20))


VARIANTS = {
    "default": DEFAULT,
    "quick": Variant("minutes on a 2-core CPU: 400 tokenizer and 240 generator steps, rougher videos",
                     quick_tokenizer, quick_generator),
}
