"""The `shapes` recipe (../shared/SHAPES.md): synthetic captioned clips that train on a CPU in minutes.

Typed config functions for each stage; variants (`quick`) derive from the default by copy-and-modify.
"""
from __future__ import annotations

import dataclasses

from t2v.tokenizer.losses import LossConfig
from t2v.tokenizer.model import preset
from t2v.tokenizer.train import DataConfig, OptimConfig, TokenizerTrainConfig

DATA_DIR = "data/shapes"
VARIANTS = ("default", "quick")


def tokenizer_config(variant: str = "default") -> TokenizerTrainConfig:
    """Tokenizer for 17-frame 64×64 shapes clips: the tiny preset, FSQ sized to this small data's variety.

    The perceptual loss is off: the clips are flat colours on black, and L1 + GAN suffice; real-footage recipes
    turn LPIPS on (it needs its backbone weights on disk).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of recipe shapes: choose one of {', '.join(VARIANTS)}")
    config = TokenizerTrainConfig(
        name="shapes",
        model=preset("tiny", fsq_levels=(8, 5, 5, 5)),
        loss=LossConfig(perceptual_weight=0.0, adversarial_weight=0.05, discriminator_start=2000),
        data=DataConfig(index=f"{DATA_DIR}/index.jsonl", train_split="seen", eval_split="heldout",
                        num_frames=17, size=(64, 64), eval_clips=64),
        optim=OptimConfig(lr=1e-3, discriminator_lr=2e-4, warmup_steps=100, min_lr_ratio=0.05),
        steps=3000, batch_size=4, image_every=0, eval_every=500, checkpoint_every=250,
    )
    if variant == "quick":
        config = dataclasses.replace(config, steps=300, eval_every=150, checkpoint_every=150,
                                     loss=dataclasses.replace(config.loss, discriminator_start=200))
    return config
