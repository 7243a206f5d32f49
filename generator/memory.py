"""The memory of a generator training step per GPU, for `t2v generator train --dry-run`: parameters, the model
states of each ZeRO stage, and the activations of a micro-batch.

Model states, bytes per parameter P on N GPUs (Rajbhandari et al. 2020, "ZeRO", as DeepSpeed implements it):
- bf16 (mixed precision; "auto" on a GPU): stage 0, DeepSpeed's bf16 optimizer without ZeRO (`FP16_Optimizer`):
  2 bf16 weights + 2 bf16 gradients + 4 fp32 master weights + 4 fp32 gradients (made at the step) + 8 Adam
  moments = 20; stage 1, the fp32 parts partitioned: 4 + 16/N; stage 2, the gradients too: 2 + 18/N, and stage 3,
  the weights too: 18/N + 4 × the largest layer (gathered whole), both as DeepSpeed's own estimators compute them
  (`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`, without offload; the test checks
  the numbers against them, so the dry run needs no deepspeed import).
- fp32: 4 weights + 4 gradients + 8 Adam moments = 16, partitioned as the ZeRO paper does: stage 1 8 + 8/N,
  stage 2 4 + 12/N, stage 3 16/N.

Activations: counted, as Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models", section 4.1) count them for GPT, tensor by tensor of what autograd keeps for the backward, here for this
model's layer (transformers' Qwen2 decoder layer: RMSNorm, grouped-query SDPA, SwiGLU; no dropout) in bf16:
`layer_bytes`. With SDPA's flash and memory-efficient kernels no attention matrix is kept (their 5·a·s/h term);
with gradient checkpointing a layer keeps only its input (their "full recomputation": 2·s·b·h bytes) and the
backward recomputes one layer at a time. The loss never holds the whole logits (generator/loss.py): it keeps the
gradient of the last hidden states and of the output weight, and computes one chunk of logits at a time. The
formula matches a measurement of the real model within a few percent (tests/test_memory_estimate.py).
Not counted: the backward's temporaries (one layer's gradients at a time), the allocator's fragmentation, the CUDA
context (~0.5 GB), NCCL buffers.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from t2v.core.memory import gib, table
from t2v.core.precision import compute_dtype
from t2v.generator.config import GeneratorConfig, GeneratorTrainConfig

GPU_COUNTS = (1, 8)  # the table's columns, with the launch's WORLD_SIZE when it is another


def model_state_bytes(params: int, largest_layer: int, stage: int, gpus: int, bf16: bool) -> int:
    """The weights, gradients and AdamW state one GPU holds (see the module docstring for the formulas)."""
    if bf16:
        per_gpu = {0: 20 * params, 1: 4 * params + 16 * params / gpus, 2: 2 * params + 18 * params / gpus,
                   3: 4 * largest_layer + 18 * params / gpus}
    else:
        per_gpu = {0: 16 * params, 1: 8 * params + 8 * params / gpus, 2: 4 * params + 12 * params / gpus,
                   3: 16 * params / gpus}
    return int(per_gpu[stage])


def layer_bytes(model: GeneratorConfig, element: int) -> int:
    """Bytes one decoder layer keeps for the backward per id, computing in `element`-byte floats (2: bf16).

    Per id, with hidden h, key/value width kv and MLP width i: each RMSNorm keeps its input in fp32 (4h, its own
    upcast), its normalised input and its output (2 × element·h, the output for the projections that follow);
    attention keeps q and its output (2 × element·h), k and v (2 × element·kv), the output projection's input
    (element·h) and SDPA's log-sum-exp (4 per head); SwiGLU keeps gate, up, SiLU(gate) and their product (4 ×
    element·i); the norms' reciprocal roots 2 × 4. In bf16 that is 8h + 2(6h + 2kv + 4i) + …: for the B preset
    (768, 768, 2048) 34,872 bytes, 45.4 bytes per hidden unit (Korthikanti's GPT layer: 34 with dropout and a
    4h GELU MLP).
    """
    h, kv, i = model.hidden, model.kv_heads * model.head_dim, model.intermediate
    return 2 * 4 * h + element * (6 * h + 2 * kv + 4 * i) + 4 * model.heads + 2 * 4


@dataclass(frozen=True)
class TrainingSequence:
    """The longest training sequence of the config and where each of its numbers comes from."""

    latent_frames: int | None  # None: unknown (no data.window, no shards)
    grid: tuple[int, int]  # (h, w) latent grid
    ids: int  # whole sequence (prefix, video ids, EOV; or prefix, clean and query frames)
    loss_ids: int  # the ids the loss reads (logits_from on)
    notes: tuple[str, ...]  # "latent frames 5 from data.window", …


@dataclass(frozen=True)
class GeneratorMemory:
    """A generator run's memory per GPU; `format()` is the dry run's table."""

    parameters: int
    largest_layer: int  # parameters of the largest module (ZeRO-3 gathers it whole)
    model: GeneratorConfig  # as the estimate resolved it (vocabulary sizes from the shards or the config)
    sequence: TrainingSequence
    batch_size: int  # sequences per GPU and micro-batch
    bf16: bool
    zero_stage: int
    gpus: tuple[int, ...]
    gradient_checkpointing: bool
    chunk: int  # ids per chunk of the loss (generator/loss.py)

    @property
    def element(self) -> int:
        return 2 if self.bf16 else 4

    def model_states(self, stage: int, gpus: int) -> int:
        return model_state_bytes(self.parameters, self.largest_layer, stage, gpus, self.bf16)

    def activations(self, checkpointing: bool) -> dict[str, int] | None:
        """A micro-batch's activations by part, None when the sequence length is unknown: what the layers keep
        (with checkpointing each one's input), the layer the backward recomputes (with checkpointing), what the
        final norm and the loss keep, the loss's working memory for one chunk of ids, and a block attention mask."""
        if self.sequence.latent_frames is None:
            return None
        m, e, b = self.model, self.element, self.batch_size
        ids, loss_ids = b * self.sequence.ids, b * self.sequence.loss_ids
        one_layer = ids * layer_bytes(m, e)
        parts = {"layers": m.layers * ids * e * m.hidden if checkpointing else m.layers * one_layer,
                 "recomputed layer": one_layer if checkpointing else 0,
                 # the final norm's fp32 input, normalised output and reciprocal root, the gradient of the hidden
                 # states the loss keeps, and the fp32 gradient of the output weight
                 "output": loss_ids * (4 * m.hidden + 2 * e * m.hidden + 4) + 4 * m.codebook_size * m.hidden,
                 # one chunk's logits (compute dtype, then fp32), its softmax (fp32) and that cast back
                 "loss chunk": min(self.chunk, loss_ids) * m.codebook_size * (2 * e + 8)}
        if m.decoding != "token":  # the block mask (B, 1, L, L): bool, and as SDPA's additive bias
            parts["attention mask"] = b * self.sequence.ids ** 2 * (1 + e)
        return parts

    def format(self) -> str:
        m, seq = self.model, self.sequence
        precision = "bf16 mixed precision" if self.bf16 else "fp32"
        lines = ["memory per GPU (estimate):",
                 f"  parameters: {self.parameters:,} ({m.layers} layers × {m.hidden}, vocabulary "
                 f"{m.vocab.size:,} ids, {m.codebook_size:,} codes; largest layer {self.largest_layer:,})",
                 *(f"  {note}" for note in seq.notes),
                 f"  model states (weights, gradients, AdamW; {precision}), GiB:"]
        header = ["ZeRO stage", *(f"{n} GPU{'s' if n > 1 else ''}" for n in self.gpus)]
        rows = [[f"{stage}{' (config)' if stage == self.zero_stage else ''}",
                 *(gib(self.model_states(stage, n)) for n in self.gpus)] for stage in range(4)]
        lines.append(table(header, rows, indent="    "))
        chosen = self.activations(self.gradient_checkpointing)
        if chosen is None:
            lines.append("  activations: the sequence length is unknown: set data.window=N (latent frames per "
                         "sequence) or give shards (--shards DIR)")
            return "\n".join(lines)
        per_layer = layer_bytes(m, self.element)
        lines.append(f"  activations of a micro-batch ({self.batch_size} × {seq.ids:,} ids, the loss on "
                     f"{seq.loss_ids:,} of each), GiB; a layer keeps {per_layer:,} B per id "
                     f"({per_layer / m.hidden:.1f} B per hidden unit, {'bf16' if self.bf16 else 'fp32'}), "
                     f"checkpointed {self.element * m.hidden:,} B:")
        rows = []
        for checkpointing in (False, True):
            parts = self.activations(checkpointing)
            mark = " (config)" if checkpointing == self.gradient_checkpointing else ""
            rows.append([f"gradient checkpointing {'on' if checkpointing else 'off'}{mark}",
                         *(gib(value) for value in parts.values()), gib(sum(parts.values()))])
        lines.append(table(["", *chosen, "total"], rows, indent="    "))
        totals = [gib(self.model_states(self.zero_stage, n) + sum(chosen.values())) for n in self.gpus]
        on_each = ", ".join(f"{total} GiB on {n} GPU{'s' if n > 1 else ''}" for n, total in zip(self.gpus, totals))
        lines.append(f"  total at ZeRO {self.zero_stage}, gradient checkpointing "
                     f"{'on' if self.gradient_checkpointing else 'off'} (the config's): {on_each}")
        lines.append("  not counted: backward temporaries, allocator fragmentation, CUDA context, NCCL buffers")
        return "\n".join(lines)


def resolve(config: GeneratorTrainConfig) -> tuple[GeneratorConfig, TrainingSequence]:
    """The model and its longest training sequence as training would resolve them, from the shards where they
    exist (codebook size, latent grids, clip lengths) and the config otherwise; the notes say which."""
    from t2v.tokenizer.shards import ShardReader

    data, notes = config.data, []
    shards = Path(data.shards) if data.shards else None
    reader = ShardReader.open(shards) if shards is not None and (shards / "meta.json").is_file() else None
    codebook, grids = config.model.codebook_size, [tuple(grid) for grid in config.model.sizes]
    shapes = reader.shapes()[reader.select(data.train_split)] if reader is not None else None
    if shapes is not None and len(shapes):
        codebook = int(reader.meta["codebook_size"])
        grids = sorted({(int(h), int(w)) for _, h, w in shapes})
        notes.append(f"codebook size {codebook:,} and latent grids from the shards in {shards}")
    else:
        where = "no shards in the config" if shards is None else f"no clips of the split in {shards}" \
            if reader is not None else f"{shards} has no shards yet"
        notes.append(f"codebook size {codebook:,} and latent grids from the config ({where}: training takes them "
                     "from the shards)")
    notes.append(f"text vocabulary {data.text_vocab_size:,} pieces from data.text_vocab_size (training's caption "
                 "model may have fewer)")
    model = dataclasses.replace(config.model, text_size=data.text_vocab_size, max_text_len=data.max_text_len,
                                codebook_size=codebook, sizes=[list(grid) for grid in grids])
    if model.text_encoder:  # the projection's width from the encoder's config.json (its frozen weights: not counted)
        from t2v.generator.text_encoder import with_encoder

        model = with_encoder(model)
        notes.append(f"text encoder {model.text_encoder}: its projection counted, its frozen weights not")
    grid = max(grids, key=lambda hw: hw[0] * hw[1])
    frames = None
    if data.window:
        frames = data.window
        notes.append(f"sequence: {frames} latent frames from data.window, latent grid {grid[1]}x{grid[0]} (the "
                     "largest)")
    elif shapes is not None and len(shapes):
        frames = int(shapes[:, 0].max())
        notes.append(f"sequence: {frames} latent frames (the longest clip of the shards), latent grid "
                     f"{grid[1]}x{grid[0]} (the largest)")
    vocab, video = model.vocab, (frames or 0) * grid[0] * grid[1]
    if model.decoding == "token":  # [prefix][video ids][EOV]; the loss from BOV (the prefix's last id) on
        ids, loss_ids = vocab.sequence_len(frames or 0, *grid), video + 2
    else:  # [prefix][clean frames][query frames]; the loss on the query frames
        ids, loss_ids = vocab.prefix_len + 2 * video, video
    return model, TrainingSequence(frames, grid, ids, loss_ids, tuple(notes))


def estimate(config: GeneratorTrainConfig, world: int | None = None) -> GeneratorMemory:
    """The memory per GPU of training `config` on GPUs: its precision as a CUDA device resolves it, the model built
    on the meta device (no memory, no initialisation), for 1 and 8 GPUs and `world` (default: WORLD_SIZE)."""
    import torch

    from t2v.generator.loss import CHUNK
    from t2v.generator.model import CodeDigits, VideoGenerator

    model_config, sequence = resolve(config)
    with torch.device("meta"):  # CodeDigits reads its levels' numbers: built apart, on the CPU (they are small)
        model = VideoGenerator(dataclasses.replace(model_config, code_levels=[]))
    if model_config.code_levels:
        model.digits_in, model.digits_out = (CodeDigits(model_config.code_levels, model_config.hidden)
                                             for _ in range(2))
    parameters = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    world = world if world is not None else int(os.environ.get("WORLD_SIZE", "1"))
    return GeneratorMemory(
        parameters=parameters, largest_layer=largest, model=model_config, sequence=sequence,
        batch_size=config.batch_size, bf16=compute_dtype(config.precision, "cuda") == torch.bfloat16,
        zero_stage=config.zero_stage, gpus=tuple(sorted({*GPU_COUNTS, world})),
        gradient_checkpointing=config.gradient_checkpointing, chunk=CHUNK)
