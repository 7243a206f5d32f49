"""GPU-sized configs shared by the real-footage recipes (ucf101, msrvtt, webvid, kinetics, folder).

Each dataset's `__init__.py` declares one `Footage` (its splits, steps and caption sizes; its paths follow from its
name) and exports that object's `tokenizer_config` and `generator_config`; its variants are the ones here
(`VARIANTS`), derived by copy-and-modify (`dataclasses.replace`). The numbers are sized for one node of 8 × 80 GB
GPUs; they are planned from the model sizes, not yet measured on such a node.

Clips: 17 frames at 8 fps (2 s), 128×128 centre/random crops. The tokenizer (preset "B", stride 4×8×8, 64,000
FSQ codes) turns a clip into 5×16×16 = 1,280 codes; the generator (preset "B", 12 layers, 768 wide) reads the
caption then those codes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.generator.config import preset as generator_preset
from t2v.recipes import DEFAULT, Variant, choose
from t2v.tokenizer.config import DataConfig, LossConfig, OptimConfig, TokenizerTrainConfig, preset

NUM_FRAMES = 17
SIZE = (128, 128)  # (H, W)
FPS = 8.0


def tokenizer_config(name: str, index: str, train_split: str | None, eval_split: str | None,
                     steps: int = 100_000) -> TokenizerTrainConfig:
    """The tokenizer for 17×128×128 clips of real footage, trained on 8 GPUs.

    Per GPU 4 clips (32 a step in all; bf16 autocast on GPUs: `--dry-run` estimates 19.4 GiB for them, 8.3 GiB with
    `gradient_checkpointing`), after an image phase of 10,000 steps at 32 frames per GPU. LPIPS is on (real
    textures need it; its AlexNet weights must be on disk, see tokenizer/losses.py), the GAN starts once
    reconstructions are good (step 30,000).
    lr 1e-4 with 2,000 warmup steps, cosine to 1e-5.
    """
    return TokenizerTrainConfig(
        name=name,
        model=preset("B"),
        loss=LossConfig(l1_weight=1.0, l2_weight=0.0, perceptual_weight=0.1, adversarial_weight=0.1,
                        discriminator_start=30_000, discriminator_channels=64),
        data=DataConfig(index=index, train_split=train_split, eval_split=eval_split, num_frames=NUM_FRAMES,
                        size=SIZE, fps=FPS, eval_clips=256),
        optim=OptimConfig(lr=1e-4, discriminator_lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, warmup_steps=2_000,
                          min_lr_ratio=0.1, grad_clip=1.0),
        steps=steps, batch_size=4, image_steps=10_000, image_batch_size=32, log_every=50, eval_every=5_000,
        checkpoint_every=2_500, num_samples=8,
    )


def generator_config(name: str, shards: str, train_split: str | None, eval_split: str | None, *,
                     text_vocab_size: int, max_text_len: int, sample_prompts: list[str],
                     steps: int = 100_000) -> GeneratorTrainConfig:
    """The generator for those clips' token shards (~1,300-id sequences), trained on 8 GPUs with DeepSpeed.

    Preset "B" (12 layers, 768 wide: ~185M parameters with the 64,000-code embedding and head), 16 sequences per GPU × 8 GPUs × 2 accumulation steps = 256
    sequences (~330k ids) a step, bf16, ZeRO stage 1. lr 3e-4 with 2,000 warmup steps, cosine to 3e-5, weight
    decay 0.05, 10% of captions dropped for classifier-free guidance. The vocabulary sizes are placeholders that
    training sets from the caption tokenizer it trains and from the shards.
    """
    return GeneratorTrainConfig(
        name=name,
        model=generator_preset("B", max_text_len=max_text_len),
        data=GeneratorDataConfig(shards=shards, train_split=train_split, caption_dropout=0.1,
                                 text_vocab_size=text_vocab_size, max_text_len=max_text_len, eval_split=eval_split,
                                 eval_clips=512),
        optim=GeneratorOptimConfig(lr=3e-4, weight_decay=0.05, betas=(0.9, 0.95), warmup_steps=2_000,
                                   min_lr_ratio=0.1, grad_clip=1.0),
        steps=steps, batch_size=16, grad_accum=2, zero_stage=1, precision="bf16", log_every=50,
        checkpoint_every=2_500, sample_every=5_000, sample_prompts=list(sample_prompts),
    )


def quick_tokenizer(config: TokenizerTrainConfig) -> TokenizerTrainConfig:
    """`quick`: 2,000 steps (500 of images, the GAN from 1,500) to check a setup end to end on GPUs."""
    return dataclasses.replace(config, steps=2_000, image_steps=500, eval_every=1_000, checkpoint_every=500,
                               loss=dataclasses.replace(config.loss, discriminator_start=1_500),
                               optim=dataclasses.replace(config.optim, warmup_steps=100))


def quick_generator(config: GeneratorTrainConfig) -> GeneratorTrainConfig:
    """`quick`: 2,000 steps without accumulation, to check a setup end to end on GPUs."""
    return dataclasses.replace(config, steps=2_000, grad_accum=1, checkpoint_every=500, sample_every=1_000,
                               optim=dataclasses.replace(config.optim, warmup_steps=100))


VARIANTS = {
    "default": DEFAULT,
    "quick": Variant("2,000 steps of each stage, to check a setup end to end on GPUs", quick_tokenizer,
                     quick_generator),
}


@dataclass(frozen=True)
class Footage:
    """One real-footage dataset: its name (data/NAME/index.jsonl, data/NAME-tokens), splits, the steps of each
    stage, its caption vocabulary and caption length, and the prompts sampled during training."""

    name: str
    train_split: str | None
    eval_split: str | None
    tokenizer_steps: int
    generator_steps: int
    text_vocab_size: int
    max_text_len: int
    sample_prompts: tuple[str, ...] = ()

    @property
    def index(self) -> str:
        return f"data/{self.name}/index.jsonl"

    @property
    def tokens_dir(self) -> str:
        return f"data/{self.name}-tokens"

    def tokenizer_config(self, variant: str = "default") -> TokenizerTrainConfig:
        """The shared footage tokenizer (17×128×128 clips at 8 fps, preset B, LPIPS on, 8 GPUs) on this index."""
        config = tokenizer_config(self.name, self.index, self.train_split, self.eval_split, steps=self.tokenizer_steps)
        return choose(VARIANTS, self.name, variant).tokenizer(config)

    def generator_config(self, variant: str = "default") -> GeneratorTrainConfig:
        """The shared footage generator (preset B, 256 sequences a step on 8 GPUs, bf16, ZeRO 1) on this dataset's
        shards."""
        config = generator_config(self.name, self.tokens_dir, self.train_split, self.eval_split,
                                  text_vocab_size=self.text_vocab_size, max_text_len=self.max_text_len,
                                  steps=self.generator_steps, sample_prompts=list(self.sample_prompts))
        return choose(VARIANTS, self.name, variant).generator(config)
