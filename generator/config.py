"""The generator's configs: its architecture (`GeneratorConfig` and the size presets) and a training run's data,
optimizer, precision and schedule (`GeneratorTrainConfig`). Plain dataclasses, light to import (no torch, no
transformers): a recipe returns them, `--set key=value` overrides them, a run's config.json holds them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t2v.generator.vocab import Vocab

PRECISIONS = ("auto", "fp32", "bf16")
# How the generator predicts a latent frame (what it is trained for and how it samples): "token", one code per
# forward pass in raster order (causal attention); "frame", every code of the next latent frame in one pass
# (next-block prediction with the latent frame as the block); "masked", a frame in a few passes, each revealing the
# most confident of the codes still masked (MaskGIT inside a frame, causal across frames).
DECODINGS = ("token", "frame", "masked")
RATE_TOLERANCE = 1e-3  # relative: 29.97 and 29.97003 name the same rate


def check_vocab(text_size: int, codebook_size: int, max_text_len: int, sizes, rates) -> tuple[tuple, tuple]:
    """The size table as (h, w) int pairs and the rate table as floats, after checking the vocabulary: positive
    sizes, positive table entries, no repeats (rates within RATE_TOLERANCE are one rate)."""
    if min(text_size, codebook_size, max_text_len) < 1:
        raise ValueError(f"vocab sizes and max_text_len must be positive, got text_size={text_size}, "
                         f"codebook_size={codebook_size}, max_text_len={max_text_len}")
    sizes = tuple((int(h), int(w)) for h, w in sizes)
    rates = tuple(float(rate) for rate in rates)
    if not sizes or not rates or min(min(grid) for grid in sizes) < 1 or min(rates) <= 0:
        raise ValueError(f"the size and rate tables need positive entries, got sizes {sizes}, rates {rates}")
    repeated_rate = any(math.isclose(a, b, rel_tol=RATE_TOLERANCE) for i, a in enumerate(rates) for b in rates[:i])
    if len(set(sizes)) != len(sizes) or repeated_rate:
        raise ValueError(f"the size and rate tables must not repeat entries, got sizes {sizes}, rates {rates}")
    return sizes, rates


@dataclass
class GeneratorConfig:
    """Transformer sizes + the vocabulary it reads (text pieces, video codes, caption length, grids, rates)."""

    layers: int = 4
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 704
    text_size: int = 64
    codebook_size: int = 1024
    max_text_len: int = 16
    rope_theta: float = 10000.0
    # Split of each head's rotary frequency pairs over (t, h, w); empty: half to t, a quarter each to h and w.
    rope_sections: list[int] = field(default_factory=list)
    # FSQ levels of the video codebook (empty: codes are plain ids): factorized code embeddings and head (`CodeDigits`).
    code_levels: list[int] = field(default_factory=list)
    # The latent grids (h, w) and frame rates it is conditioned on: one prefix id each (training sets them from
    # the shards; these are placeholders).
    sizes: list[list[int]] = field(default_factory=lambda: [[8, 8]])
    rates: list[float] = field(default_factory=lambda: [8.0])
    decoding: str = "token"  # DECODINGS: the training objective and attention, and so the sampling strategy
    frame_passes: int = 8  # forward passes per latent frame a "masked" generator samples with unless told
    # What a query place not drawn yet reads ("frame", "masked"): "previous", the code at that place one latent
    # frame earlier, marked as a guess by the MASK vector (next-block prediction's input; MASK alone in a video's
    # first latent frame), or "mask", the MASK vector alone.
    query_input: str = "previous"
    # A frozen pretrained text encoder to condition on instead of the caption pieces: a directory holding a
    # `transformers` T5 encoder or CLIP text model and its tokenizer (text_encoder.py); empty: the caption tokenizer.
    # Its last hidden states, projected to `hidden`, take the caption slots of the prefix. Its width (hidden size)
    # sizes the projection: training reads it from the directory.
    text_encoder: str = ""
    text_encoder_width: int = 0

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {self.decoding!r}")
        if self.query_input not in ("previous", "mask"):
            raise ValueError(f"query_input must be 'previous' or 'mask', got {self.query_input!r}")
        if self.frame_passes < 1:
            raise ValueError(f"frame_passes must be at least 1, got {self.frame_passes}")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError(f"hidden ({self.hidden}) must divide by heads ({self.heads}), heads by kv_heads "
                             f"({self.kv_heads})")
        if self.rope_sections and (len(self.rope_sections) != 3 or sum(self.rope_sections) != self.head_dim // 2):
            raise ValueError(f"rope_sections must be 3 numbers summing to head_dim/2 = {self.head_dim // 2} "
                             f"(or empty for the default split), got {self.rope_sections}")
        self.code_levels = list(self.code_levels)
        if self.code_levels and math.prod(self.code_levels) != self.codebook_size:
            raise ValueError(f"code_levels {self.code_levels} make {math.prod(self.code_levels)} codes, the codebook "
                             f"has {self.codebook_size}: set them to the tokenizer's FSQ levels (or empty)")
        if self.text_encoder_width < 0:
            raise ValueError(f"text_encoder_width must be 0 (read from the encoder) or positive, got "
                             f"{self.text_encoder_width}")
        check_vocab(self.text_size, self.codebook_size, self.max_text_len, self.sizes, self.rates)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def rotary_split(self) -> list[int]:
        """Rotary frequency pairs per axis (t, h, w): `rope_sections`, or half to t and a quarter each to h, w."""
        pairs = self.head_dim // 2
        return list(self.rope_sections) or [pairs - 2 * (pairs // 4), pairs // 4, pairs // 4]

    @property
    def vocab(self) -> Vocab:
        from t2v.generator.vocab import Vocab  # torch: loaded when a config is built, not when this module is imported

        return Vocab(self.text_size, self.codebook_size, self.max_text_len, tuple(map(tuple, self.sizes)),
                     tuple(self.rates), mask=self.decoding != "token")



def _swiglu_width(hidden: int) -> int:
    """LlamaGen's MLP width: 2/3 of 4·hidden, rounded up to a multiple of 256."""
    return -(-int(2 * 4 * hidden / 3) // 256) * 256


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "tiny": GeneratorConfig(layers=4, hidden=256, heads=4, kv_heads=4, intermediate=_swiglu_width(256)),
    "S": GeneratorConfig(layers=8, hidden=512, heads=8, kv_heads=8, intermediate=_swiglu_width(512)),
    "B": GeneratorConfig(layers=12, hidden=768, heads=12, kv_heads=12, intermediate=_swiglu_width(768)),
    "L": GeneratorConfig(layers=24, hidden=1024, heads=16, kv_heads=16, intermediate=_swiglu_width(1024)),
    "XL": GeneratorConfig(layers=36, hidden=1280, heads=20, kv_heads=20, intermediate=_swiglu_width(1280)),
}


def preset(name: str, **overrides) -> GeneratorConfig:
    """A named size (`tiny`, `S`, `B`, `L`, `XL`) with overrides (vocabulary sizes, …)."""
    if name not in GENERATOR_PRESETS:
        raise ValueError(f"unknown generator preset {name!r}: choose one of {', '.join(GENERATOR_PRESETS)}")
    return dataclasses.replace(GENERATOR_PRESETS[name], **overrides)


@dataclass
class GeneratorDataConfig:
    """Token shards to train on and how captions become text ids."""

    shards: str = ""  # a recipe, --shards DIR or --set data.shards=DIR gives it
    train_split: str | None = None  # None: every clip
    caption_dropout: float = 0.1  # null caption instead, for classifier-free guidance
    text_vocab_size: int = 64  # sentencepiece target size (smaller if the captions are few)
    max_text_len: int = 12
    eval_split: str | None = None  # held-out loss at each checkpoint (None or an absent split: none)
    eval_clips: int = 64
    window: int = 0  # latent frames per sequence, cut at random offsets from longer clips (0: whole clips)
    context_noise: float = 0.0  # fraction of input video ids replaced by random codes (robustness to own errors)
    window_weight: float = 0.0  # a clip is drawn ∝ (its windows) ** this: 0 every clip alike, 1 every window alike
    num_workers: int = 1  # DataLoader processes drawing micro-batches ahead of the step (0: in the training process)

    def __post_init__(self) -> None:
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if not 0 <= self.context_noise < 1 or self.window < 0 or self.window == 1:
            raise ValueError(f"need context_noise in [0, 1) and window 0 (whole clips) or ≥ 2, got "
                             f"{self.context_noise}, {self.window}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 (draw in the training process) or more, got {self.num_workers}")
        if not 0 <= self.window_weight <= 1:
            raise ValueError(f"need window_weight in [0, 1] (0: every clip alike, 1: every window alike), got "
                             f"{self.window_weight}")


@dataclass
class GeneratorOptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.05  # on matrices only (not norms)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr × this
    grad_clip: float = 1.0


@dataclass
class GeneratorTrainConfig:
    """Everything a generator run needs; a recipe returns one, `--set key=value` overrides it."""

    name: str = "generator"
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    data: GeneratorDataConfig = field(default_factory=GeneratorDataConfig)
    optim: GeneratorOptimConfig = field(default_factory=GeneratorOptimConfig)
    steps: int = 1000  # optimizer steps
    batch_size: int = 8  # micro-batch per rank
    grad_accum: int = 1
    zero_stage: int = 0
    precision: str = "auto"  # bf16 on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False  # recompute each layer's activations in backward: less memory, ~30% slower
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_skipped_steps: int = 10  # steps with a NaN/inf gradient skipped in a row before the run stops
    sample_every: int = 0  # 0 = never
    sample_prompts: list[str] = field(default_factory=list)
    tokenizer_dir: str = ""  # the video tokenizer that decodes samples; empty = no samples

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.sample_every < 0:
            raise ValueError(f"sample_every must be 0 (never) or positive, got {self.sample_every}")
        if self.max_skipped_steps < 0:
            raise ValueError(f"max_skipped_steps must be >= 0, got {self.max_skipped_steps}")
