"""The memory of a tokenizer training step on one GPU, for `t2v tokenizer train --dry-run`: parameters, AdamW state,
and the activations autograd keeps for the backward, measured rather than guessed.

The measurement runs the training step's forward (tokenizer, its loss with LPIPS and the GAN term when the config
reaches it, then the discriminator's loss) on fake tensors: shapes and dtypes without data, so the configured clip
size costs no compute and no memory. It counts every storage saved for the backward once, parameters excluded, in
the dtypes a GPU run gives them (bf16 autocast for the encoder and decoder: `cuda_autocast_on_cpu`; the quantizer
and the losses in fp32). With gradient checkpointing, what is kept follows from the same forward: each encoder and
decoder block's input instead of its own tensors, plus the largest block's, recomputed in the backward. In fp32 the
measurement equals a real run's on the CPU byte for byte (tests/test_memory_estimate.py); the bf16 figures rest on
CUDA's autocast policy as torch documents it, not on a GPU run. Not counted: the backward's own temporaries (the
gradient of one layer at a time), the cuDNN workspace, the allocator's fragmentation and the CUDA context (~0.5 GB).
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import torch

from t2v.core.memory import (ADAMW_FP32_BYTES, SavedTensors, cuda_autocast_on_cpu, gib, make_fake, module_shares,
                             table)
from t2v.core.precision import compute_dtype
from t2v.tokenizer.config import TokenizerTrainConfig
from t2v.tokenizer.losses import TokenizerLoss
from t2v.tokenizer.model import VideoTokenizer


@dataclass(frozen=True)
class Activations:
    """Bytes kept for the backward by one forward of a training step (a micro-batch, which may be one clip)."""

    full: int  # everything autograd saves
    block_inputs: int  # with gradient checkpointing: what is kept (each block's input instead of its own tensors)
    recomputed: int  # … and the largest block's own tensors, recomputed in the backward
    discriminator: int  # the discriminator's step (the real and the reconstructed items); 0 while the GAN is off

    @property
    def checkpointed(self) -> int:
        return self.block_inputs + self.recomputed

    def kept(self, checkpointing: bool) -> int:
        """The larger of the tokenizer's and the discriminator's (their steps follow each other)."""
        return max(self.checkpointed if checkpointing else self.full, self.discriminator)


@dataclass(frozen=True)
class TokenizerMemory:
    """A tokenizer run's memory per GPU; `format()` is the dry run's table."""

    tokenizer_params: int
    discriminator_params: int
    frozen_params: int  # LPIPS: weights only
    precision: str  # the encoder's and decoder's on a GPU: "bf16" (autocast) or "fp32"
    clip: tuple[int, int, int]  # (frames, H, W)
    batch_size: int  # clips per GPU and micro-batch
    one_clip: Activations
    micro_batch: Activations  # `batch_size` clips: a forward's fixed part (e.g. bf16 weight copies) counted once
    image_batch_size: int  # frames per GPU in the image phase (0: no image phase)
    image_batch: Activations | None
    gan: bool  # whether the measured clip step has the GAN term (the config reaches discriminator_start)
    gradient_checkpointing: bool  # the config's

    @property
    def state_bytes(self) -> int:
        """fp32 weights, gradients and AdamW's two moments of the trained parameters; the others' weights (LPIPS;
        the discriminator of a run that never turns the GAN on)."""
        trained = self.tokenizer_params + (self.discriminator_params if self.gan else 0)
        frozen = self.frozen_params + (0 if self.gan else self.discriminator_params)
        return ADAMW_FP32_BYTES * trained + 4 * frozen

    def step_activations(self, checkpointing: bool) -> int:
        """The largest forward's activations: a micro-batch of clips, or of the image phase's frames."""
        return max(batch.kept(checkpointing) for batch in (self.micro_batch, self.image_batch) if batch is not None)

    def total(self, checkpointing: bool) -> int:
        return self.state_bytes + self.step_activations(checkpointing)

    def format(self) -> str:
        frames, height, width = self.clip
        mixed = "bf16 autocast" if self.precision == "bf16" else "fp32"

        def row(name: str, batch: Activations) -> list[str]:
            return [name, gib(batch.full), gib(batch.checkpointed), gib(batch.discriminator) if self.gan else "-"]

        rows = [row(f"one {frames}x{height}x{width} clip", self.one_clip),
                row(f"micro-batch: {self.batch_size} clips", self.micro_batch)]
        if self.image_batch is not None:
            rows.append(row(f"image phase: {self.image_batch_size} frames", self.image_batch))
        chosen, other = ("on", "off") if self.gradient_checkpointing else ("off", "on")
        return "\n".join([
            "memory per GPU (estimate):",
            f"  parameters: tokenizer {self.tokenizer_params:,}, discriminator {self.discriminator_params:,}"
            + ("" if self.gan else " (never trained: the GAN stays off)")
            + (f", LPIPS {self.frozen_params:,} (frozen)" if self.frozen_params else ""),
            f"  model state: {gib(self.state_bytes)} GiB (16 B per trained parameter: fp32 weights, gradients, "
            f"AdamW's two moments; 4 B per other one)",
            f"  activations kept for the backward, GiB, measured on fake tensors ({mixed} as on a GPU, the losses in "
            f"fp32; with{'' if self.gan else 'out'} the GAN term):",
            table(["", "kept", "checkpointed", "discriminator step"], rows, indent="    "),
            f"  total (state + the largest micro-batch): {gib(self.total(self.gradient_checkpointing))} GiB with "
            f"gradient checkpointing {chosen} (the config's), {gib(self.total(not self.gradient_checkpointing))} GiB "
            f"with it {other}",
            "  not counted: backward temporaries, cuDNN workspace, allocator fragmentation, CUDA context; DDP's "
            f"gradient buckets on several GPUs (+{gib(4 * self.tokenizer_params)} GiB)",
        ])


def measure(model: VideoTokenizer, loss: TokenizerLoss, batch: int, frames: int, size: tuple[int, int], step: int,
            bf16: bool) -> Activations:
    """The activations of a micro-batch of `batch` items of `frames` frames at `size` (H, W), on fake tensors: the
    tokenizer's forward (in bf16 autocast when `bf16`) and generator-side loss at training step `step`, as the
    trainer runs them, then the discriminator's loss (when the GAN is on at `step`). Their parameters are made fake
    on the way (`make_fake`): build them for this call."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    make_fake([model, loss], mode)
    parameters = [*model.parameters(), *loss.parameters()]
    blocks = [*model.encoder.blocks, *model.decoder.blocks]
    with mode:
        video = torch.empty(batch, 3, frames, *size).uniform_(-1, 1)
        with SavedTensors(exclude=parameters) as saved, module_shares(saved, blocks) as shares:
            with cuda_autocast_on_cpu() if bf16 else contextlib.nullcontext():
                output = model(video)
            reconstruction = output.reconstruction.float()  # the losses compute in fp32
            held = [loss.generator_loss(video, reconstruction, output.aux_loss, model.decoder.last_layer, step)[0]]
        with SavedTensors(exclude=parameters) as discriminator:
            if loss.gan_active(step):
                held.append(loss.discriminator_loss(video, reconstruction)[0])
        kept, kept_by_discriminator = saved.total, discriminator.total  # while the losses in `held` keep their graphs
    # checkpointed blocks keep their inputs instead of what they save, and the backward recomputes one at a time
    block_inputs = kept - sum(own for own, _ in shares) + sum(given for _, given in shares)
    return Activations(kept, block_inputs, max(own for own, _ in shares), kept_by_discriminator)


def estimate(config: TokenizerTrainConfig) -> TokenizerMemory:
    """The memory per GPU of training `config` on GPUs (its precision as a CUDA device resolves it)."""
    bf16 = compute_dtype(config.precision, "cuda") == torch.bfloat16
    loss_config = dataclasses.replace(config.loss, lpips_random_backbone=True)  # the same network, no file needed

    def built() -> tuple[VideoTokenizer, TokenizerLoss]:
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lpips builds AlexNet with torchvision's old arguments
            model, loss = VideoTokenizer(config.model), TokenizerLoss(loss_config, float_logs=False)
        model.set_gradient_checkpointing(False)  # measured whole; checkpointing is derived from the blocks
        return model, loss

    model, loss = built()
    tokenizer_params = sum(p.numel() for p in model.parameters())
    discriminator_params = sum(p.numel() for p in loss.discriminator.parameters())
    frozen = sum(p.numel() for p in loss.parameters()) - discriminator_params
    clip_phase = min(max(config.loss.discriminator_start, config.image_steps), config.steps - 1)  # GAN on if ever
    gan = loss.gan_active(clip_phase)
    data = config.data
    size = max([tuple(data.size), *map(tuple, data.buckets)], key=lambda hw: hw[0] * hw[1])  # the largest bucket
    one_clip = measure(model, loss, 1, data.num_frames, size, clip_phase, bf16)
    micro_batch = measure(*built(), config.batch_size, data.num_frames, size, clip_phase, bf16)
    image_batch = None
    if config.image_steps:
        image_batch = measure(*built(), config.image_batch_size, 1, size, config.image_steps - 1, bf16)
    return TokenizerMemory(
        tokenizer_params=tokenizer_params, discriminator_params=discriminator_params, frozen_params=frozen,
        precision="bf16" if bf16 else "fp32", clip=(data.num_frames, *size), batch_size=config.batch_size,
        one_clip=one_clip, micro_batch=micro_batch, image_batch_size=config.image_batch_size if image_batch else 0,
        image_batch=image_batch, gan=gan, gradient_checkpointing=config.gradient_checkpointing)
