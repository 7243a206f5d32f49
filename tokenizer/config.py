"""The tokenizer's configs: its architecture (`TokenizerConfig` and the size presets), its losses, and a training
run's data, optimizer and schedule (`TokenizerTrainConfig`). Plain dataclasses, light to import (no torch): a recipe
returns them, `--set key=value` overrides them, a run's config.json holds them.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field


@dataclass
class QuantizerConfig:
    """Which quantizer turns the latent into codes, and its settings: FSQ levels, LFQ bits and loss weights, or an
    EMA VQ codebook (its size, width, decay, commitment and dead-code restart threshold)."""

    kind: str = "fsq"  # fsq | lfq | vq
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)  # 64,000 codes
    lfq_bits: int = 16
    lfq_commitment: float = 0.25
    lfq_entropy: float = 0.1
    vq_codebook_size: int = 16384
    vq_dim: int = 8
    vq_decay: float = 0.99
    vq_commitment: float = 0.25
    vq_dead_code_threshold: float = 2.0

    def __post_init__(self) -> None:
        self.fsq_levels = tuple(self.fsq_levels)
        if self.kind not in ("fsq", "lfq", "vq"):
            raise ValueError(f"unknown quantizer {self.kind!r}: choose fsq, lfq or vq")


_QUANTIZER_KEYS = ("fsq_levels", "lfq_bits", "lfq_commitment", "lfq_entropy", "vq_codebook_size", "vq_dim", "vq_decay",
                   "vq_commitment", "vq_dead_code_threshold")


@dataclass
class TokenizerConfig:
    """Architecture of the video tokenizer. `channels` has one width per resolution level (log2(stride) + 1)."""

    channels: tuple[int, ...] = (128, 128, 256, 512)
    num_res_blocks: int = 2
    spatial_stride: int = 8
    patch_size: int = 1  # space-to-depth stem: the first level runs at 1/patch_size resolution (part of the stride)
    temporal_stride: int = 4
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    chunk_latent_frames: int = 4  # latent frames per chunk of encode/decode (memory vs. speed)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.spatial_stride not in (8, 16):
            raise ValueError(f"spatial_stride must be 8 or 16, got {self.spatial_stride}")
        if self.temporal_stride not in (1, 2, 4):
            raise ValueError(f"temporal_stride must be 1, 2 or 4, got {self.temporal_stride}")
        if self.patch_size not in (1, 2, 4) or self.patch_size >= self.spatial_stride:
            raise ValueError(f"patch_size must be 1, 2 or 4 and below the spatial stride, got {self.patch_size}")
        levels = int(math.log2(self.spatial_stride // self.patch_size)) + 1
        if len(self.channels) != levels:
            raise ValueError(f"channels needs {levels} widths for spatial stride {self.spatial_stride} and patch size "
                             f"{self.patch_size}, got {len(self.channels)}: {list(self.channels)}")
        if 2 ** sum(self.temporal_levels()) != self.temporal_stride:
            raise ValueError(f"temporal stride {self.temporal_stride} needs {int(math.log2(self.temporal_stride))} "
                             f"downsampling levels, the config has {self.num_downsamples}: add levels to channels "
                             f"or lower the patch size")
        if self.chunk_latent_frames < 1:
            raise ValueError("chunk_latent_frames must be at least 1")

    @staticmethod
    def upgrade(values: dict) -> dict:
        """`values` of a config.json in the layout before the quantizer had its own section (`quantizer: "fsq"`
        and the `fsq_*`/`lfq_*`/`vq_*` keys beside the others) moved into that section; other layouts unchanged."""
        old = values.get("quantizer")
        if isinstance(old, dict) or (old is None and not any(key in values for key in _QUANTIZER_KEYS)):
            return values
        values = dict(values)
        section = {key: values.pop(key) for key in _QUANTIZER_KEYS if key in values}
        if "quantizer" in values:
            section["kind"] = values.pop("quantizer")
        values["quantizer"] = section
        return values

    @property
    def num_downsamples(self) -> int:
        return len(self.channels) - 1

    def temporal_levels(self) -> list[bool]:
        """Which of the down/upsampling levels also halve time: the deepest log2(temporal_stride) ones."""
        count = int(math.log2(self.temporal_stride))
        return [i >= self.num_downsamples - count for i in range(self.num_downsamples)]


TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    "tiny": TokenizerConfig(channels=(16, 32, 64, 128), num_res_blocks=1),
    "S": TokenizerConfig(channels=(64, 128, 192, 256), num_res_blocks=2),
    "B": TokenizerConfig(channels=(128, 128, 256, 512), num_res_blocks=2),
    "L": TokenizerConfig(channels=(128, 256, 512, 512), num_res_blocks=3),
}


def preset(name: str, **overrides) -> TokenizerConfig:
    """A copy of preset `name` with `overrides` applied; unknown names list the known ones."""
    if name not in TOKENIZER_PRESETS:
        raise ValueError(f"unknown tokenizer preset {name!r}; choose one of {', '.join(TOKENIZER_PRESETS)}")
    return dataclasses.replace(TOKENIZER_PRESETS[name], **overrides)


@dataclass
class LossConfig:
    """Weights of each term and when the adversarial game starts."""

    l1_weight: float = 1.0
    l2_weight: float = 0.0  # squared error: its gradient grows with the error, unlike L1's
    gradient_weight: float = 0.0  # L1 between the frames' spatial gradients (edges): penalises blur directly
    temporal_weight: float = 0.0  # L1 between the frame-to-frame differences: penalises motion that fades or jumps
    salience_weight: float = 0.0  # L1/L2 weigh a pixel 1 + this × its salience (losses.reconstruction_terms)
    perceptual_weight: float = 0.1  # 0 turns LPIPS off
    lpips_weights: str | None = None  # path to alexnet-owt-7be5be79.pth; None = torch hub cache
    lpips_random_backbone: bool = False  # tests only: LPIPS with a random AlexNet, needs no file
    adversarial_weight: float = 0.1
    discriminator_start: int = 2000  # step at which the GAN terms switch on
    discriminator_channels: int = 32
    quantizer_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("l1_weight", "l2_weight", "gradient_weight", "temporal_weight", "salience_weight",
                     "perceptual_weight",
                     "adversarial_weight", "quantizer_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be ≥ 0")


@dataclass
class DataConfig:
    """Where clips come from and their shape: `index`, a jsonl of {path, caption, split, …}, or `drawn`, a function
    that draws clips ("module:function", tokenizer/drawn.py: a new clip for every item, nothing read from disk)."""

    index: str = ""  # a recipe or --set data.index=PATH gives it
    drawn: str = ""  # e.g. t2v.recipes.shapes.dataset:draw_clips; when set, `index` is not read
    # a packed directory (`t2v data pack`, tokenizer/packed.py): when set, `index` is its index.jsonl, whose rows
    # name tar members that the clip datasets read (one file per shard instead of one per clip)
    shards: str = ""
    train_split: str | None = None  # None: every clip
    eval_split: str | None = None  # None: no held-out evaluation
    num_frames: int = 17
    size: tuple[int, int] = (256, 256)  # (H, W)
    fps: float | None = None  # None = the files' own rate
    eval_clips: int = 64
    # (H, W) sizes clips are sorted into by aspect ratio, each batch of one size (e.g. 1:1, 4:3, 16:9, 9:16 at one
    # pixel budget); empty: every clip at `size`
    buckets: list[tuple[int, int]] = field(default_factory=list)
    # DataLoader worker processes drawing batches ahead (shared by the grad_accum micro-batch streams, at least one
    # each); 0 = in the training process
    num_workers: int = 2
    prefetch_batches: int = 2  # batches each worker keeps ready

    def __post_init__(self) -> None:
        self.drawn = self.drawn or ""  # `--set data.drawn=` (null): train from the index
        if any(len(bucket) != 2 or min(bucket) < 1 for bucket in self.buckets):
            raise ValueError(f"data.buckets must be positive (H, W) pairs, got {self.buckets}")
        self.shards = self.shards or ""
        if self.shards and self.drawn:
            raise ValueError("data.shards and data.drawn are two sources of clips: set one (--set data.drawn=)")
        if self.shards:
            self.index = os.path.join(self.shards, "index.jsonl")
        if self.drawn and (self.buckets or self.fps):
            raise ValueError("data.drawn clips come at one size and the function's own rate: set data.buckets=[] "
                             "and data.fps=null, or train from an index (data.drawn='')")
        if self.num_workers < 0 or self.prefetch_batches < 1:
            raise ValueError(f"data.num_workers must be >= 0 and data.prefetch_batches >= 1, got "
                             f"{self.num_workers} and {self.prefetch_batches}")


@dataclass
class OptimConfig:
    lr: float = 1e-4
    clip_lr: float | None = None  # peak lr of the clip phase after an image phase (None: lr); see tokenizer/train.py
    discriminator_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    grad_clip: float = 1.0


@dataclass
class TokenizerTrainConfig:
    """Everything a tokenizer run needs; a recipe returns one, `--set key=value` overrides it."""

    name: str = "tokenizer"
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 10000
    batch_size: int = 4  # clips per rank and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (each rank's step sees grad_accum × batch_size clips)
    image_steps: int = 0  # the first steps train on single frames (an image phase), then on clips
    image_batch_size: int = 16  # frames per rank and step in the image phase
    # the last steps train the decoder alone on the frozen encoder's codes, with their own warmup and cosine: the
    # codes a generator learns stop changing, and the decoder (e.g. with the GAN on) can still sharpen
    decoder_steps: int = 0
    # in the fine-tune, this fraction of codes swapped for others of the batch (a decoder that tolerates a
    # generator's mistakes)
    decoder_code_noise: float = 0.0
    decoder_adversarial_weight: float | None = None  # the GAN's weight in the fine-tune; None: loss.adversarial_weight
    seed: int = 0
    log_every: int = 10
    eval_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_skipped_steps: int = 10  # steps with a NaN/inf loss or gradient skipped in a row before the run stops
    num_samples: int = 4  # side-by-side sample videos per evaluation
    channels_last: bool = True  # faster 3D convolutions on CPU (oneDNN) and GPU
    # the encoder's and decoder's forward: auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16 (autocast); the
    # quantizer and the losses always compute in fp32
    precision: str = "auto"
    # keep only each encoder/decoder block's input and recompute the block in the backward: activation memory for
    # a second forward of the blocks
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.image_batch_size < 1 or self.grad_accum < 1:
            raise ValueError("steps, batch_size, image_batch_size and grad_accum must be positive")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r} (fp16 would need a loss "
                             "scaler: use bf16)")
        if not 0 <= self.image_steps < self.steps:
            raise ValueError(f"image_steps ({self.image_steps}) must be in [0, steps={self.steps}): clips must "
                             "follow the image phase")
        if not 0 <= self.decoder_steps < self.steps - self.image_steps:
            raise ValueError(f"decoder_steps ({self.decoder_steps}) must be in [0, steps - image_steps = "
                             f"{self.steps - self.image_steps}): the decoder fine-tune comes after the clip phase; set "
                             "decoder_steps lower (0: none)")
        if self.decoder_adversarial_weight is not None and self.decoder_adversarial_weight < 0:
            raise ValueError(f"decoder_adversarial_weight must be >= 0, got {self.decoder_adversarial_weight}")
        if not 0 <= self.decoder_code_noise < 1:
            raise ValueError(f"decoder_code_noise must be in [0, 1), got {self.decoder_code_noise}")
        for name in ("log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_skipped_steps < 0:
            raise ValueError(f"max_skipped_steps must be >= 0, got {self.max_skipped_steps}")
