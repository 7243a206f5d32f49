"""Generator training with DeepSpeed: engine, ZeRO stage, bf16/fp32, accumulation, checkpoints, exact resume.

The only module that imports deepspeed (inside functions, so configs and recipes load without it). Runs as one
plain process (rank 0 of 1: RANK / WORLD_SIZE / MASTER_* defaults are set for the call; the one-rank group then
stays for later calls, as DeepSpeed caches its groups) or as several ranks launched by `torchrun` / `deepspeed`;
gloo on CPU, nccl on GPU.

Notable choices:
- Our torch AdamW and a LambdaLR (linear warmup, cosine to `min_lr_ratio`: core's `lr_factor`) go into
  the engine; DeepSpeed averages gradients, clips, and steps both at each accumulation boundary.
- Each micro-batch holds sequences of one latent grid (a bucket: clips of one aspect ratio and size), drawn with
  the bucket from (seed, rank, step, micro-step); the grids and frame rates of the training clips become the
  generator's size and rate tables (config.json's model.sizes / model.rates).
- Each rank's micro-batch is a pure function of (seed, rank, step, micro-step), and each rank keeps its RNG state
  in its own file beside DeepSpeed's (whose client state all ranks share): a resumed run has exactly the losses
  of the uninterrupted one.
- The save sequence is the tokenizer's (core/checkpoint.py): eval line, checkpoint written into
  `checkpoints/.step_N.tmp/` and renamed into place once every rank has written, export, samples, then `latest`.
  DeepSpeed state serves resume only; the weights are exported as run_dir/model.safetensors next to the train
  config.json, so `VideoGenerator.from_pretrained(run_dir)` works.
- No pickle runs on resume: each rank's RNG state is safetensors + JSON, and DeepSpeed's own files are read with
  `torch.load(weights_only=True)` (`SafeCheckpointEngine`), which refuses any file that names code to run.
- A step whose gradients hold NaN or inf is skipped (DeepSpeed's ZeRO optimizers do it; `SkippingAdamW` does it
  without ZeRO), counted, and more than `max_skipped_steps` in a row stop the run (core/guard.py).

- With a text encoder (`model.text_encoder`, text_encoder.py) each rank holds it frozen beside the engine (its
  weights in no checkpoint): micro-batches carry the captions' encoder tokens, and the step runs the encoder on them
  without autograd before the generator's forward (on the fly: nothing to precompute or store, any dataset size).
  The caption tokenizer is still trained and saved (its pieces' rows then unused), so a run directory and the
  pipelines assembled from it keep one layout.

Steps of a run: 1. the caption tokenizer (trained on rank 0, loaded by all) 2. the resolved config.json 3. the
engine 4. per step: draw micro-batches, forward, cross-entropy on video ids, backward, step; log, checkpoint, sample.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from t2v.generator.attention import layout_mask
from t2v.generator.data import IGNORE, TokenSequences
from t2v.generator.config import GeneratorTrainConfig
from t2v.generator.model import VideoGenerator
from t2v.generator.text import TextTokenizer, normalize
from t2v.generator.text_encoder import TextEncoder, check_encoder_dir, with_encoder
from t2v.generator.config import RATE_TOLERANCE
from t2v.core import distributed, rundir
from t2v.core.distributed import launcher_env
from t2v.generator.batches import collate, draw_step
from t2v.core.atomic import atomic_directory, fsync_tree, replace_directory
from t2v.core.config_io import write_config
from t2v.core.checkpoint import (check_finite, commit, export_weights, exported_step, latest_checkpoint, rng_state,
                                 set_rng_state)
from t2v.core.guard import NonFiniteGuard
from t2v.core.lr_schedule import lr_factor
from t2v.core.precision import compute_dtype
from t2v.core.runlog import RunLog, truncate_metrics
from t2v.core.step_loader import step_loader
from t2v.core.chunks import ROW_CHUNK
from t2v.tokenizer.shards import ShardReader
from t2v.core.state_io import load_state, save_state

RANK_STATE = "rank{rank}"  # each rank's RNG state in a checkpoint: rank0.json + rank0.safetensors, …


@dataclass
class GeneratorTrainResult:
    steps: int
    loss: float  # mean over ranks and micro-batches of the last step
    seconds: float  # wall time of this call's training steps
    tokens_per_second: float  # all ranks together, ids of whole sequences

    def summary(self) -> str:
        return (f"{self.steps} steps, final loss {self.loss:.4f}, {self.seconds:.1f} s, "
                f"{self.tokens_per_second:,.0f} tokens/s")


def sequence_loss(model: Any, batch: dict[str, torch.Tensor], device: torch.device,
                  encoder: TextEncoder | None = None) -> torch.Tensor:
    """Cross-entropy on the video ids of a collated batch (the labelled ids: from BOV on, or the query frames), by
    `model` (a VideoGenerator or its DeepSpeed engine) on `device`; the batch's captions through the frozen
    `encoder` first when it carries encoder tokens."""
    start = int((batch["labels"] != IGNORE).any(dim=0).nonzero()[0])  # on the host: no device sync
    batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
    mask = layout_mask(batch["frame"], batch["query"]) if "frame" in batch else None
    text = encoder.states(batch["text_ids"], batch["text_mask"]) if "text_ids" in batch else None
    return model(batch["ids"], batch["positions"], logits_from=start, attention=mask, guesses=batch.get("guess"),
                 labels=batch["labels"][:, start:], text=text,
                 text_mask=batch.get("text_mask"))  # generator/loss.py: no full logits


@torch.no_grad()
def held_out_loss(model: Any, data: TokenSequences, clips: int, batch_size: int, device: torch.device,
                  encoder: TextEncoder | None = None) -> float:
    """Mean `sequence_loss` over the first `clips` items of `data`, `batch_size` at a time (the logged eval_loss)."""
    count = min(clips, len(data))
    losses = [sequence_loss(model, collate([data[i] for i in range(start, min(start + batch_size, count))]), device,
                            encoder) for start in range(0, count, batch_size)]
    return float(torch.stack(losses).mean())


def check_inputs(config: GeneratorTrainConfig) -> ShardReader:
    """Open the shards; a one-line error if they are missing or hold no clip of the training split."""
    if not config.data.shards:
        raise ValueError("no token shards in the config: pass --shards DIR (or --set data.shards=DIR), made by "
                         "`t2v tokenizer encode TOKENIZER INDEX DIR`")
    shards = Path(config.data.shards)
    if not (shards / "meta.json").is_file():
        raise FileNotFoundError(f"token shards not found in {shards} (no meta.json): encode a dataset with "
                                f"`t2v tokenizer encode TOKENIZER INDEX {shards}` or pass --shards DIR")
    reader = ShardReader.open(shards)
    if not len(reader.select(config.data.train_split)):
        raise ValueError(f"no clips of split {config.data.train_split!r} in {shards}: "
                         f"--set data.train_split=… (or null for all clips)")
    levels = config.model.code_levels
    if levels and reader.fsq_levels() != list(levels):
        raise ValueError(f"model.code_levels {levels} are not the FSQ levels of the tokenizer of {shards} "
                         f"({reader.fsq_levels() or 'not FSQ'}): --set model.code_levels=[…] "
                         f"to its levels, or [] for plain code embeddings")
    if config.model.text_encoder:
        check_encoder_dir(config.model.text_encoder)
    return reader


# At most this many captions train the caption tokenizer: sentencepiece's own `input_sentence_size` convention
# (it samples 1M sentences of a larger corpus); more adds training time and memory, not merges worth having.
MAX_TEXT_TRAINING_CAPTIONS = 1_000_000


def train_captions(reader: ShardReader, split: str | None, limit: int = MAX_TEXT_TRAINING_CAPTIONS) -> list[str]:
    """The captions of `split`'s clips (every clip when None), or of `limit` of them drawn without replacement
    by a fixed seed (the same sample on every run and rank), in clip order; read from the memory-mapped index, so
    only the sample is ever held."""
    clips = reader.select(split)
    if len(clips) > limit:
        clips = np.sort(np.random.default_rng(0).choice(clips, size=limit, replace=False))
    return [reader.caption(clip) for clip in clips]


def trained_tables(reader: ShardReader, split: str | None) -> tuple[list[list[int]], list[float]]:
    """The latent grids (h, w) and frame rates of the training clips, sorted: the generator's size and rate tables."""
    clips, all_rates, rates, grids = reader.select(split), reader.rates(), set(), set()
    for start in range(0, len(clips), ROW_CHUNK):  # column-wise, a chunk at a time: no clip-long temporaries
        part = clips[start: start + ROW_CHUNK]
        rates.update(np.unique(all_rates[part]).tolist())
        grids.update(map(tuple, np.unique(np.asarray(reader.shapes()[part])[:, 1:], axis=0).tolist()))
    if any(math.isnan(rate) for rate in rates):
        raise ValueError(f"clips of {reader.directory} have no frame rate (no fps in index.jsonl or meta.json): "
                         "re-encode them with `t2v tokenizer encode`, which records each clip's fps")
    unique_rates: list[float] = []
    for rate in sorted(rates):
        if not unique_rates or not math.isclose(rate, unique_rates[-1], rel_tol=RATE_TOLERANCE):
            unique_rates.append(rate)
    return [list(grid) for grid in sorted(grids)], unique_rates


# 2. The trainer ----------------------------------------------------------------------------------------------
# DeepSpeed: the process group, the engine, the pickle-free checkpoint loader, universal checkpoints, ZeRO-3 --
def init_process_group() -> None:
    """DeepSpeed's process group (gloo on CPU), without compiling the CPU shared-memory op it never needs here.

    On CPU, DeepSpeed's TorchBackend builds `deepspeed_shm_comm` unless its table of compatible ops says no; only
    `inference_all_reduce` (inference tensor parallelism) uses the op. Marking it in the table skips the build;
    writing the table ourselves (when not probed yet) also skips the probe, which runs a compiler per op.
    """
    import deepspeed
    import deepspeed.ops

    if torch.cuda.is_available():  # each rank on its own GPU before any collective (NCCL binds to the current one)
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:  # GPU accelerators have no such op
        vars(deepspeed.ops).setdefault("__compatible_ops__", {})["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo",
                               auto_mpi_discovery=False, verbose=False)


def deepspeed_config(config: GeneratorTrainConfig, bf16: bool) -> dict[str, Any]:
    return {"train_micro_batch_size_per_gpu": config.batch_size,
            "gradient_accumulation_steps": config.grad_accum,
            "gradient_clipping": config.optim.grad_clip,
            "zero_optimization": {"stage": config.zero_stage},
            "bf16": {"enabled": bf16},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 2**31 - 1,  # our own logging
            "wall_clock_breakdown": False}


class SkippingAdamW(torch.optim.AdamW):
    """AdamW that skips a step whose gradients hold NaN or inf (zeroing them), and says so through `overflow`, the
    attribute DeepSpeed's engine reads to count skipped steps (its ZeRO optimizers set it themselves)."""

    overflow = False

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch API
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.overflow = bool(grads) and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        if self.overflow:
            self.zero_grad(set_to_none=True)
            return None
        return super().step(closure)


def safe_checkpoint_engine(engine: Any) -> Any:
    """DeepSpeed's torch checkpoint engine with a load that unpickles nothing but tensors and plain containers."""
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    # data-only classes DeepSpeed pickles into its ZeRO optimizer files (numbers as attributes; rebuilding them runs
    # no code of the file's choosing)
    allowed = [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]

    class SafeCheckpointEngine(TorchCheckpointEngine):
        def load(self, path: str, map_location=None):  # noqa: D102 - DeepSpeed API
            try:
                with torch.serialization.safe_globals(allowed):
                    return torch.load(path, map_location=map_location, weights_only=True)
            except Exception as error:  # torch raises UnpicklingError or RuntimeError for a refused global
                reason = next((line.strip() for line in str(error).splitlines() if "Unsupported" in line),
                              str(error).splitlines()[0] if str(error) else type(error).__name__)
                raise ValueError(f"checkpoint file {path} is damaged or holds objects other than tensors, numbers "
                                 f"and strings ({reason[:160]}); it is not loaded, since unpickling it could run "
                                 "code. Resume from a checkpoint you trust or start a new run") from None

    return SafeCheckpointEngine(engine._config)


def make_engine(model: VideoGenerator, config: GeneratorTrainConfig, bf16: bool) -> Any:
    """A DeepSpeed engine around `model` with AdamW (decay on matrices) and the warmup + cosine schedule."""
    import logging

    import deepspeed
    from deepspeed.utils import logger

    logger.setLevel(logging.WARNING)
    opt = config.optim
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    others = [p for p in model.parameters() if p.ndim < 2]
    optimizer = SkippingAdamW([{"params": matrices, "weight_decay": opt.weight_decay},
                               {"params": others, "weight_decay": 0.0}], lr=opt.lr, betas=tuple(opt.betas))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, warmup_steps=opt.warmup_steps, total_steps=config.steps,
                                     min_ratio=opt.min_lr_ratio))
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule,
                                      config=deepspeed_config(config, bf16))
    engine.checkpoint_engine = safe_checkpoint_engine(engine)
    return engine


def to_universal(checkpoint: Path, out: Path) -> None:
    """DeepSpeed's converter (`ds_to_universal`) from the ZeRO checkpoint directory `checkpoint` into `out`, written
    under a temporary name and renamed into place; the state it needs that a plain data-parallel client never
    writes (`universal_checkpoint_info`) is injected."""
    import argparse

    from deepspeed.checkpoint.ds_to_universal import main as convert

    with atomic_directory(out) as tmp, contextlib.redirect_stdout(None):
        convert(argparse.Namespace(input_folder=str(checkpoint), output_folder=str(tmp), num_extract_workers=1,
                                   num_merge_workers=1, keep_temp_folder=False, strict=True,
                                   inject_missing_state=True))


def gathered(engine: Any) -> contextlib.AbstractContextManager:
    """Full parameters on every rank for the duration (a collective under ZeRO-3, nothing otherwise)."""
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(engine.module.parameters()))
    return contextlib.nullcontext()


class Trainer:
    """The engine, data and bookkeeping of one generator run."""

    def __init__(self, config: GeneratorTrainConfig, run_dir: Path, resume: bool) -> None:
        self.run_dir = Path(run_dir)
        reader = check_inputs(config)
        if resume:
            latest_checkpoint(self.run_dir, RANK_STATE.format(rank=0) + ".json")
        init_process_group()
        self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        # 1. the caption tokenizer: trained once by rank 0, loaded by every rank
        if self.rank == 0 and not resume:
            TextTokenizer.train(train_captions(reader, config.data.train_split), config.data.text_vocab_size,
                                config.data.max_text_len).save(self.run_dir)
        distributed.barrier()
        self.text = TextTokenizer.load(self.run_dir)
        # 2. the resolved config: vocabulary sizes from the text model and the shards, which also give the latent
        # grids and frame rates of the training clips (the size and rate tables)
        sizes, rates = trained_tables(reader, config.data.train_split)
        model = with_encoder(dataclasses.replace(config.model, text_size=self.text.size, sizes=sizes, rates=rates,
                                                 max_text_len=config.data.max_text_len,
                                                 codebook_size=int(reader.meta["codebook_size"])))
        self.config = config = dataclasses.replace(config, model=model)
        # 3. the engine
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else \
            torch.device("cpu")
        self.bf16 = compute_dtype(config.precision, self.device) == torch.bfloat16  # DeepSpeed runs mixed precision
        torch.manual_seed(config.seed)
        model = VideoGenerator(config.model)
        if config.gradient_checkpointing:  # the library's decoder layers recompute themselves in backward
            model.decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.engine = make_engine(model, config, self.bf16)
        self.vocab = config.model.vocab
        self.encoder = None  # the frozen text encoder, if any: beside the engine, out of its checkpoints
        if config.model.text_encoder:
            self.encoder = TextEncoder.load(config.model.text_encoder, config.model.max_text_len).to(
                self.device, torch.bfloat16 if self.bf16 else None)
        tokens = self.encoder.tokens if self.encoder is not None else None
        data, decoding = config.data, config.model.decoding
        previous = config.model.query_input == "previous"
        self.dataset = TokenSequences(reader, self.text, self.vocab, data.train_split, data.caption_dropout,
                                      config.seed, data.window, data.context_noise, data.window_weight, decoding,
                                      previous, tokens)
        split = config.data.eval_split
        has_eval = split is not None and len(reader.select(split)) > 0
        self.eval_set = TokenSequences(reader, self.text, self.vocab, split, window=data.window, decoding=decoding,
                                       previous=previous, encoder_tokens=tokens) if has_eval else None
        self.step = 0
        self.guard = NonFiniteGuard(config.max_skipped_steps)
        if resume:
            self.resume()
        if self.rank == 0:  # after a resume that worked: a failed one leaves the run's config as it was
            write_config(self.run_dir / "config.json", config)

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return sequence_loss(self.engine, batch, self.engine.device, self.encoder)

    def evaluate(self) -> float | None:
        """Mean loss on the first `eval_clips` clips of the eval split (captions kept), the same on every rank."""
        if self.eval_set is None:
            return None
        self.engine.eval()
        return held_out_loss(self.engine, self.eval_set, self.config.data.eval_clips, self.config.batch_size,
                             self.engine.device, self.encoder)

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]], want_norm: bool) -> dict[str, float]:
        """One optimizer step over the micro-batches; the loss is the cross-entropy on video ids."""
        engine = self.engine
        engine.train()
        losses, norm = [], None
        for batch in micro_batches:
            loss = self.loss(batch)
            engine.backward(loss)
            if want_norm and engine.is_gradient_accumulation_boundary() and engine.zero_optimization_stage() == 0:
                grads = [p.grad.float().norm() for p in engine.module.parameters() if p.grad is not None]
                norm = float(torch.stack(grads).norm())  # averaged over ranks, before clipping
            engine.step()
            losses.append(loss.detach().float())
        opt = self.config.optim
        lr = opt.lr * lr_factor(self.step, opt.warmup_steps, self.config.steps, opt.min_lr_ratio)
        if not engine.was_step_applied():  # skipped for NaN/inf gradients: the schedule still follows the step
            engine.lr_scheduler.step()
        self.guard.record(engine.was_step_applied(), self.step + 1, lr)
        logs = {"loss": torch.stack(losses).mean(), "lr": lr, "skipped_steps": self.guard.total}
        if want_norm:
            logs["loss"] = distributed.all_sum(logs["loss"].clone()) / self.world
            ds_norm = engine.get_global_grad_norm()
            norm = float(ds_norm) if ds_norm is not None else norm
            if norm is not None:
                logs["grad_norm"] = norm
        return {name: float(value) for name, value in logs.items()}

    # 4. checkpoints, export, samples --------------------------------------------------------------------------
    def save(self, samples: bool = False) -> None:
        """Stage DeepSpeed's state and every rank's RNG, rename the whole into place, export, write the samples
        (if `samples`), then move `latest` (the save sequence of core/checkpoint.py). The weights are gathered
        once, into the standalone copy that is checked, exported and sampled from; non-finite ones stop every rank
        before anything is written."""
        generator = self.standalone_generator()
        verdict = [None]
        if generator is not None:
            try:
                check_finite(generator.state_dict(), "the generator's weights", self.step)
            except FloatingPointError as error:
                verdict = [str(error)]
        torch.distributed.broadcast_object_list(verdict, src=0)  # every rank stops, or none
        if verdict[0] is not None:
            raise FloatingPointError(verdict[0])
        name = f"step_{self.step:08d}"
        staging = self.checkpoints / f".{name}.tmp"  # one name for every rank; the run directory's lock owns it
        if self.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        distributed.barrier()
        try:
            self.engine.save_checkpoint(str(staging), tag=name, save_latest=False,
                                        client_state={"step": self.step, "guard": self.guard.state()})
        except RuntimeError as error:  # torch.save says 'unexpected pos …' when the disk is full
            if os.statvfs(staging).f_bavail == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(staging / name)) from error
            raise
        (staging / name).mkdir(parents=True, exist_ok=True)
        save_state({"step": self.step, "world": self.world, "rng": rng_state()}, staging / name,
                   RANK_STATE.format(rank=self.rank))
        distributed.barrier()
        if self.rank == 0:
            fsync_tree(staging / name)
            replace_directory(staging / name, self.checkpoints / name)
            shutil.rmtree(staging, ignore_errors=True)
        if generator is not None:
            export_weights(generator.state_dict(), self.run_dir, self.step)
            if samples:
                self.write_samples(generator)
        if self.rank == 0:
            commit(self.run_dir, self.step, self.config.keep_checkpoints)
        distributed.barrier()

    def export(self) -> None:
        """The run directory's model.safetensors from the current weights (every rank calls: ZeRO-3 gathers)."""
        generator = self.standalone_generator()
        if generator is not None:
            export_weights(generator.state_dict(), self.run_dir, self.step)

    def resume(self) -> None:
        """Load the checkpoint `latest` names (complete by construction, read without pickle) and this rank's RNG
        state; redo the export if a kill left it behind."""
        name = latest_checkpoint(self.run_dir, RANK_STATE.format(rank=0) + ".json").name
        written_by = load_state(self.checkpoints / name, RANK_STATE.format(rank=0)).get("world", self.world)
        if written_by != self.world and self.config.zero_stage > 0:  # optimizer state partitioned for other ranks
            path, client = self.load_universal(self.checkpoints / name)
        else:
            path, client = self.engine.load_checkpoint(str(self.checkpoints), tag=name)
        if path is None or not isinstance(client, dict) or "step" not in client:
            raise ValueError(f"checkpoint {self.checkpoints / name} could not be loaded (DeepSpeed found no state or "
                             "no step in it); resume from an earlier checkpoint or start a new run")
        self.step = int(client["step"])
        self.guard = NonFiniteGuard(self.config.max_skipped_steps, **client.get("guard", {}))
        rank_name = RANK_STATE.format(rank=self.rank)
        if (self.checkpoints / name / f"{rank_name}.json").is_file():  # absent with more ranks than wrote it
            set_rng_state(load_state(self.checkpoints / name, rank_name)["rng"])
        if self.rank == 0:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        stale = [exported_step(self.run_dir) != self.step if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(stale, src=0)  # rank 0's file decides: every rank takes part
        if stale[0]:
            self.export()

    def load_universal(self, checkpoint: Path) -> tuple[Any, Any]:
        """Load a ZeRO checkpoint written by another number of ranks: rank 0 converts it once to DeepSpeed's
        universal layout (one file per parameter and optimizer state, `checkpoint/universal/`), which every rank
        then loads, repartitioned for the ranks of this run. Every file is first read by the pickle-free loader:
        the converter unpickles them itself, so it only ever sees files that hold tensors and plain data."""
        universal = checkpoint / "universal"
        if self.rank == 0 and not universal.is_dir():
            loader = safe_checkpoint_engine(self.engine)
            for file in sorted(checkpoint.glob("*.pt")):
                loader.load(str(file), map_location="cpu")  # a ValueError names a file that holds code
            to_universal(checkpoint, universal)
        distributed.barrier()
        config = self.engine._config  # the engine reads the layout from its config; later saves are the usual ones
        config.load_universal_checkpoint = True
        try:
            return self.engine.load_checkpoint(str(checkpoint), tag=universal.name)
        finally:
            config.load_universal_checkpoint = False

    def batches(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """The micro-batches of steps [step, steps) of this rank, drawn ahead in `data.num_workers` processes."""
        draw = functools.partial(draw_step, self.dataset, self.config, self.rank)
        yield from step_loader(draw, range(self.step, self.config.steps), self.config.data.num_workers,
                               pin_memory=self.device.type == "cuda")

    def standalone_generator(self) -> VideoGenerator | None:
        """A plain fp32 CPU copy of the current weights on rank 0 (every rank must call: ZeRO-3 gathers)."""
        with gathered(self.engine):
            if self.rank != 0:
                return None
            saved = rng_state()  # building a model draws initial weights: keep the training RNG untouched
            generator = VideoGenerator(self.config.model)
            set_rng_state(saved)
            weights = {k: v.detach().float().cpu() for k, v in self.engine.module.state_dict().items()}
            generator.load_state_dict(weights)
        return generator.eval()

    def write_samples(self, generator: VideoGenerator | None = None) -> None:
        """Videos of the sample prompts in samples/step_XXXXXXXX/, as long and as large as the training clips
        (rank 0, on the training device, so the other ranks wait seconds, not minutes), from `generator` (default: a
        standalone copy of the current weights; every rank must call)."""
        generator = generator or self.standalone_generator()
        if generator is None:
            return
        from t2v.generator.pipeline import TextToVideo  # the one module that joins the video tokenizer

        saved = rng_state()
        reader, row = self.dataset.reader, self.dataset.rows[0]
        grid = reader.rows[row]["shape"]  # latent grid of a training clip, and its rate
        pipeline = TextToVideo.assemble(self.config.tokenizer_dir, generator, self.text, reader.fps(row), tuple(grid),
                                        self.encoder)
        pipeline.to(self.device)  # fp32: a sample shows the weights, not a rounding of them
        with atomic_directory(self.run_dir / "samples" / f"step_{self.step:08d}") as tmp:
            for number, prompt in enumerate(self.config.sample_prompts):
                slug = re.sub(r"[^a-z0-9]+", "_", normalize(prompt)).strip("_")[:60]
                pipeline.write(prompt, tmp / f"{number:02d}_{slug}.mp4", seed=number)
        set_rng_state(saved)


def train(config: GeneratorTrainConfig, run_dir: str | Path, resume: bool = False) -> GeneratorTrainResult:
    """Train a generator into `run_dir` (config.json, text.model, model.safetensors, metrics.jsonl, checkpoints/).

    A fresh run needs a new or empty `run_dir`, `resume` one with a checkpoint; the directory is locked meanwhile
    (core/rundir.py), and a fresh run that fails before its first checkpoint leaves nothing behind."""
    run_dir = Path(run_dir)
    with rundir.claimed(run_dir, resume), launcher_env() as launched:
        try:
            return _train_loop(Trainer(config, run_dir, resume))
        finally:
            if launched:  # a plain process keeps its 1-rank group: DeepSpeed caches groups for the next call
                distributed.teardown(owned_only=False)


def _train_loop(trainer: Trainer) -> GeneratorTrainResult:
    config, rank = trainer.config, trainer.rank
    sampling = bool(config.tokenizer_dir and config.sample_every and config.sample_prompts)
    log = RunLog(trainer.run_dir / "metrics.jsonl" if rank == 0 else None, f"generator {config.name}", config.steps,
                 trainer.step)
    tokens = seconds = period_tokens = period_seconds = 0.0  # period: the steps since the last logged one
    logs: dict[str, float] = {}
    with log, contextlib.closing(trainer.batches()) as batches:
        while trainer.step < config.steps:
            started = time.perf_counter()
            micro_batches = next(batches)
            log_now = log.due(trainer.step + 1, config.log_every)
            logs = trainer.train_step(micro_batches, want_norm=log_now)
            trainer.step += 1
            elapsed = time.perf_counter() - started
            step_tokens = sum(batch["ids"].numel() for batch in micro_batches) * trainer.world
            tokens, seconds = tokens + step_tokens, seconds + elapsed
            period_tokens, period_seconds = period_tokens + step_tokens, period_seconds + elapsed
            if log_now:
                speed = period_tokens / max(period_seconds, 1e-9)
                period_tokens = period_seconds = 0.0
                log.write({"step": trainer.step, **logs, "tokens_per_s": round(speed, 1)})
                log.advance(loss=f"{logs['loss']:.4f}", tok_s=f"{speed:,.0f}")
            else:
                log.advance()
            samples = sampling and log.due(trainer.step, config.sample_every)
            if log.due(trainer.step, config.checkpoint_every):
                eval_loss = trainer.evaluate()
                if eval_loss is not None:
                    log.write({"step": trainer.step, "eval_loss": eval_loss})
                    log.say(f"step {trainer.step}: {config.data.eval_split} loss {eval_loss:.4f}")
                log.sync()  # the step's lines are durable before `latest` moves
                trainer.save(samples=samples)
            elif samples:
                trainer.write_samples()
    if trainer.guard.total and rank == 0:
        print(f"skipped {trainer.guard.total} steps with a NaN or inf gradient (see 'skipped_steps' in "
              f"{trainer.run_dir / 'metrics.jsonl'})")
    return GeneratorTrainResult(steps=trainer.step, loss=logs.get("loss", float("nan")), seconds=round(seconds, 2),
                                tokens_per_second=tokens / max(seconds, 1e-9))
