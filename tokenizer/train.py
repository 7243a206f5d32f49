"""Tokenizer training: the VQ-GAN loop, held-out evaluation, sample videos, resumable atomic checkpoints.

Runs as one process, or as several launched by `torchrun` / `deepspeed` (gloo on CPU, nccl on GPU): the tokenizer
and the discriminator are then DistributedDataParallel modules (core/distributed.py says why DDP). Batches are a
pure function of (seed, rank, step), and the RNG states are saved per rank, so `--resume` continues with exactly the
losses the uninterrupted run would have had. Each rank seeds torch with (seed, rank) once the weights are equal, so
what it draws besides its data (code noise, VQ restarts) is its own.

A step may accumulate `grad_accum` micro-batches of `batch_size` clips: micro-batch j of rank r at step s is the
batch that rank r·grad_accum + j would draw at step s with no accumulation (so grad_accum = 1 draws today's batches,
and W ranks × k micro-batches see the clips of W·k ranks); each micro-batch's loss counts 1/k and the gradients are
all-reduced once, with the last. The discriminator's step accumulates over the same micro-batches.

Precision (`precision`): the encoder and decoder compute under a bf16 autocast ("auto" on CUDA), the quantizer and
the losses (LPIPS and the discriminator included) in fp32; the weights, gradients and Adam state stay fp32, so bf16
needs no loss scaling. `gradient_checkpointing` recomputes the encoder's and decoder's blocks in the backward.

No step waits for the device unless it logs or checkpoints: the logged values stay tensors until then, and a step
whose loss or gradient is NaN/inf is skipped on the device (fused AdamW's `found_inf`, the mechanism torch's
GradScaler uses: neither the weights nor the Adam state move), its count settled with `NonFiniteGuard` at the next
log or checkpoint step (so a diverged run stops there, up to `log_every` steps late). Where a wait remains: the
DataLoader's hand-over on CPU, and inside vector-quantize-pytorch's EMA-VQ (its dead-code restart asks whether any
code expired) and `codes_to_latent`'s range check when the decoder fine-tune swaps codes.

With `data.buckets` (several (H, W) sizes), each clip goes to the bucket of nearest aspect ratio and each batch
holds clips of one bucket (drawn from (seed, rank, step) as well).

Training may open with an image phase: its first `image_steps` steps see single frames (one-frame videos, which
the causal encoder codes exactly as a clip's first frame), `image_batch_size` at a time: colours and shapes are learnt
at the frame rate of single frames, far above that of clips; the clip steps then learn motion, from the image
weights inflated to 3D at the first clip step (`inflate_for_clips`). Each phase has its own warmup and cosine.

Batches are drawn ahead of the step in `data.num_workers` DataLoader worker processes (`step_loader` in data.py: a
worker computes exactly the batch of (seed, rank, step) the trainer would, so workers change speed, never data);
files skipped in workers come back with the batches and are listed when training ends.

Steps of one iteration: 1. take the step's micro-batches from the loaders (frames in the image phase, clips after)
2. per micro-batch: tokenizer forward, generator-side loss (L1, LPIPS, quantizer, adaptive-weight GAN), backward
(DDP all-reduces with the last) 3. clip, step (skipped on the device if not finite) 4. discriminator step once the
GAN is on, accumulated likewise 5. log / evaluate / checkpoint.
"""
from __future__ import annotations

import contextlib
import functools
import time
from contextlib import closing
from pathlib import Path
from typing import Any, ContextManager, Iterator

import torch
import torch.distributed as dist

from t2v.core import distributed, rundir
from t2v.core.config_io import write_config
from t2v.core.checkpoint import (check_finite, commit, export_weights, exported_step, latest_checkpoint,
                                      load_checkpoint, rng_state, set_rng_state, write_checkpoint)
from t2v.tokenizer.data import ClipDataset, Phase, draw_step, step_loader
from t2v.tokenizer.drawn import DrawnClips
from t2v.tokenizer.evaluate import EvalResult, evaluate, write_samples
from t2v.core.guard import NonFiniteGuard
from t2v.core.lr_schedule import lr_factor
from t2v.core.precision import compute_dtype
from t2v.tokenizer.config import TokenizerTrainConfig
from t2v.tokenizer.losses import TokenizerLoss
from t2v.tokenizer.layers import CausalConv3d, Upsample
from t2v.tokenizer.model import VideoTokenizer
from t2v.core.runlog import RunLog, truncate_metrics


def decoder_start(config: TokenizerTrainConfig) -> int:
    """The first step of the decoder fine-tune (`steps` when there is none)."""
    return config.steps - config.decoder_steps


def phase_bounds(config: TokenizerTrainConfig) -> list[int]:
    """The first steps of the run's phases: the image phase (when there is one), the clips, the decoder fine-tune
    (when there is one)."""
    starts = [0, config.image_steps, decoder_start(config)]
    return sorted(set(starts))


def schedule_factor(step: int, config: TokenizerTrainConfig) -> float:
    """The learning-rate factor at `step`: every phase (single frames, clips, decoder fine-tune) has its own warmup
    + cosine, so a phase starts at the full rate whatever its length (each learns something new: colours and shapes,
    then motion, then sharpness), and adding a phase does not change the ones before it."""
    bounds = phase_bounds(config) + [config.steps]
    start = max(bound for bound in bounds[:-1] if bound <= step)
    end = bounds[bounds.index(start) + 1]
    return lr_factor(step - start, config.optim.warmup_steps, end - start, config.optim.min_lr_ratio)


def tokenizer_lr(step: int, config: TokenizerTrainConfig) -> float:
    """The tokenizer's peak learning rate in the phase of `step`: `optim.clip_lr` in the clip phase that follows an
    image phase (when set), else `optim.lr`. From the image phase's weights a full-rate clip phase first undoes what
    the single frames taught (measured from a 1,500-step image phase: 3e-4 lost 2 dB on first frames in 60 clip
    steps, 1e-4 kept them and raised the other frames 19.7 → 21 dB)."""
    clip_phase = config.image_steps <= step < decoder_start(config)
    if config.image_steps and clip_phase and config.optim.clip_lr is not None:
        return config.optim.clip_lr
    return config.optim.lr


def inflate_for_clips(model: VideoTokenizer, optimizer: torch.optim.Optimizer) -> None:
    """Turn the image phase's weights into a clip model that codes each frame as the image phase taught it.

    1. A single frame sees every temporal tap of a causal conv on the same frame, so the image phase trains only
       their sum and leaves the taps' differences at their random initialisation: on clips that is noise mixed in
       from the neighbouring frames (measured: 21.5 dB on first frames, 15.0 on the rest). Each kernel's sum moves
       to its current-frame tap and the other taps start at zero (the 2D → 3D "inflation" of MAGVIT-v2), so the
       first clip step already sees frame-by-frame coding and learns motion from there.
    2. Time upsampling makes two frames per latent frame from the two halves of its conv's channels and drops a
       clip's first frame, so a single frame trains only the second half; it is copied into the first.
    The Adam state of every changed tensor starts afresh.
    """
    changed = []
    for module in model.modules():
        if isinstance(module, CausalConv3d) and module.temporal_kernel > 1:
            weight = module.conv.weight  # (out, in, kt, kh, kw)
            with torch.no_grad():
                summed = weight.sum(dim=2)
                weight.zero_()
                weight[:, :, -1] = summed
            changed.append(weight)
        if isinstance(module, Upsample) and module.temporal:
            for param in module.time_conv.parameters():
                with torch.no_grad():
                    param[0::2] = param[1::2]
                changed.append(param)
    for param in changed:
        optimizer.state.pop(param, None)


def match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each Adam state tensor its parameter's memory layout: a checkpoint stores them contiguous, and fused
    AdamW reads a parameter and its state as flat arrays (measured: a channels-last weight whose restored exp_avg is
    contiguous is updated wrong, silently)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if value.shape == param.shape and value.stride() != param.stride():
                    optimizer.state[param][name] = torch.empty_like(param).copy_(value)


class Trainer:
    """Holds the model, discriminator, optimizers and schedules of one tokenizer run."""

    def __init__(self, config: TokenizerTrainConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        self.rank, self.world, self.device = distributed.setup()
        self.dtype = compute_dtype(config.precision, self.device)
        torch.manual_seed(config.seed)
        self.model = VideoTokenizer(config.model).to(self.device)
        self.model.set_gradient_checkpointing(config.gradient_checkpointing)
        self.loss = TokenizerLoss(config.loss, float_logs=False).to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        # The wrapped modules run the forwards whose gradients are all-reduced; everything else (the adaptive GAN
        # weight's gradients at the decoder's last layer, the generator's adversarial term through the discriminator,
        # evaluation, checkpoints) uses the modules themselves. The decoder fine-tune leaves the encoder unused.
        self.ddp_model = distributed.wrap(self.model, find_unused_parameters=config.decoder_steps > 0)
        self.ddp_discriminator = distributed.wrap(self.loss.discriminator)
        torch.manual_seed(distributed.rank_seed(config.seed, self.rank))
        opt = config.optim
        # fused: its `found_inf` skips a non-finite step on the device (`train_step`)
        self.opt_g = torch.optim.AdamW(self.model.parameters(), lr=opt.lr, betas=opt.betas,
                                       weight_decay=opt.weight_decay, fused=True)
        self.opt_d = torch.optim.AdamW(self.loss.discriminator.parameters(), lr=opt.discriminator_lr,
                                       betas=opt.betas, weight_decay=opt.weight_decay, fused=True)
        self.step = 0  # the learning rate is lr_factor(step): restoring the step restores the schedule
        data = config.data
        if data.drawn:  # a new clip for every item, from (seed, step, item): tokenizer/drawn.py
            clips = functools.partial(DrawnClips, data.drawn, size=tuple(data.size))
            eval_length = {"length": data.eval_clips}
        else:
            clips = functools.partial(ClipDataset, data.index, size=tuple(data.size), fps=data.fps,
                                      buckets=data.buckets, crop="random")
            eval_length = {"crop": "center"}
        self.train_set = clips(num_frames=data.num_frames, split=data.train_split, seed=config.seed)
        self.eval_set = clips(num_frames=data.num_frames, split=data.eval_split, seed=config.seed + 1, **eval_length)
        self.image_set = clips(num_frames=1, split=data.train_split, seed=config.seed) if config.image_steps else None
        self.phases = ([Phase(self.image_set, config.image_batch_size, until=config.image_steps)]
                       if config.image_steps else []) + [Phase(self.train_set, config.batch_size)]
        self.skipped: dict[str, str] = {}  # path → reason, from every process that drew batches
        self.batch(config.image_steps)  # a split with no readable clip fails here, before any step (ValueError)
        self.guard = NonFiniteGuard(config.max_skipped_steps)
        self.unsettled: list[tuple[torch.Tensor, int, float]] = []  # (finite flag, step, lr) not yet in the guard

    def batch(self, step: int, micro: int = 0) -> torch.Tensor:
        """Micro-batch `micro` of this rank at `step`, drawn here: single frames in the image phase, clips after.
        It is the batch rank·grad_accum + micro would draw without accumulation (the module docstring)."""
        return draw_step(self.phases, self.config.seed, self.rank * self.config.grad_accum + micro, step)

    def batches(self, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The micro-batches of steps [start, steps), drawn ahead by the data workers (`data.num_workers` shared by
        one loader per micro-batch, at least one each); records the files they skipped."""
        data, accum = self.config.data, self.config.grad_accum
        workers = -(-data.num_workers // accum)
        loaders = [step_loader(self.phases, seed=self.config.seed, rank=self.rank * accum + micro,
                               steps=range(start, self.config.steps), num_workers=workers,
                               prefetch_batches=data.prefetch_batches, pin_memory=self.device.type == "cuda")
                   for micro in range(accum)]
        for micro_batches in zip(*loaders):
            for batch in micro_batches:
                self.skipped.update(batch["skipped"])
            yield tuple(batch["video"] for batch in micro_batches)

    def autocast(self) -> ContextManager:
        """The context of the tokenizer's forward: a bf16 autocast at precision bf16, else nothing."""
        if self.dtype == torch.bfloat16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # 1. One optimisation step ---------------------------------------------------------------------------------
    def train_step(self, *micro_batches: torch.Tensor) -> dict[str, torch.Tensor | float]:
        """One optimizer step of the tokenizer (and, once the GAN is on, of the discriminator) over `micro_batches`
        (the loop passes grad_accum of them), each counting 1/len(micro_batches). Returns the step's logs: the lr, and
        0-d tensors on the device averaged over the micro-batches (`host_logs` reads them)."""
        if self.config.image_steps and self.step == self.config.image_steps:  # the first clip step (or its resume)
            inflate_for_clips(self.model, self.opt_g)
        factor = schedule_factor(self.step, self.config)  # a function of the step: resumes exactly
        for optimizer, base in ((self.opt_g, tokenizer_lr(self.step, self.config)),
                                (self.opt_d, self.config.optim.discriminator_lr)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor
        self.model.train()
        fine_tune = self.step >= decoder_start(self.config)
        adversarial_weight = self.config.decoder_adversarial_weight if fine_tune else None
        gan = self.loss.gan_active(self.step, adversarial_weight)
        videos = [self.to_device(video) for video in micro_batches]
        count = len(videos)
        logs: dict[str, torch.Tensor] = {}
        reconstructions = []
        self.opt_g.zero_grad(set_to_none=True)
        for index, video in enumerate(videos):
            with distributed.accumulating(self.ddp_model, last=index == count - 1):
                with self.autocast():
                    output = self.ddp_model(video, train_encoder=not fine_tune,
                                            code_noise=self.config.decoder_code_noise if fine_tune else 0.0)
                with torch.autocast(self.device.type, enabled=False):
                    loss, micro_logs = self.loss.generator_loss(video, output.reconstruction.float(), output.aux_loss,
                                                                self.model.decoder.last_layer, self.step,
                                                                adversarial_weight)
                (loss / count).backward()
            add_mean(logs, micro_logs, count)
            if gan:
                reconstructions.append(output.reconstruction.detach().float())
        logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip,
                                                           foreach=True)
        # the gradients (so their norm) are the same on every rank after the all-reduce, a loss is each rank's own:
        # every rank skips if any rank's loss is not finite
        bad = distributed.all_sum((~(torch.isfinite(logs["grad_norm"]) & torch.isfinite(logs["loss"]))).float())
        skip = (bad > 0).float()
        self.opt_g.found_inf = skip  # fused AdamW leaves weights and state alone where found_inf is 1
        self.opt_g.step()
        if gan:
            skip = self.discriminator_step(videos, reconstructions, logs, skip)
        logs["lr"] = self.opt_g.param_groups[0]["lr"]
        self.unsettled.append((skip == 0, self.step + 1, logs["lr"]))
        return logs

    def discriminator_step(self, videos: list[torch.Tensor], reconstructions: list[torch.Tensor],
                           logs: dict[str, torch.Tensor], skip: torch.Tensor) -> torch.Tensor:
        """The discriminator's step on the step's micro-batches and their reconstructions (made before the
        tokenizer's step, as without accumulation), skipped where the tokenizer's was (`skip` 1) or its own gradient
        is not finite; returns that skip flag (0 or 1)."""
        self.opt_d.zero_grad(set_to_none=True)
        for index, (video, reconstruction) in enumerate(zip(videos, reconstructions)):
            with distributed.accumulating(self.ddp_discriminator, last=index == len(videos) - 1):
                d_loss, d_logs = self.loss.discriminator_loss(video, reconstruction, self.ddp_discriminator)
                (d_loss / len(videos)).backward()
            add_mean(logs, d_logs, len(videos))
        grads = [p.grad for p in self.loss.discriminator.parameters() if p.grad is not None]
        skip = torch.maximum(skip, (~torch.isfinite(torch.nn.utils.get_total_norm(grads))).float())
        self.opt_d.found_inf = skip
        self.opt_d.step()
        return skip

    def to_device(self, video: torch.Tensor) -> torch.Tensor:
        video = video.to(self.device, non_blocking=True)
        return video.contiguous(memory_format=torch.channels_last_3d) if self.config.channels_last else video

    def settle(self) -> None:
        """Bring the steps' finite flags into the guard (one wait for the device); raises FloatingPointError once
        too many steps in a row were skipped."""
        if self.unsettled:
            flags = torch.stack([flag for flag, _, _ in self.unsettled]).tolist()
            steps = [(step, lr) for _, step, lr in self.unsettled]
            self.unsettled = []
            for finite, (step, lr) in zip(flags, steps):
                self.guard.record(finite, step, lr)

    def host_logs(self, logs: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """A step's logs as floats (one wait for the device), with the skipped steps so far."""
        tensors = {name: value for name, value in logs.items() if isinstance(value, torch.Tensor)}
        values = torch.stack([value.float() for value in tensors.values()]).tolist() if tensors else []
        self.settle()
        return {**logs, **dict(zip(tensors, values)), "skipped_steps": self.guard.total}

    # 2. State for resume ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        self.settle()
        return {"step": self.step, "model": self.model.state_dict(),
                "discriminator": self.loss.discriminator.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "guard": self.guard.state()}

    def save(self) -> None:
        """The checkpoint of this step, then the export, then `latest` (checkpoint.py: the save sequence; the
        metrics and samples of the step are already written)."""
        rank_states = [None] * self.world
        if dist.is_initialized():
            dist.all_gather_object(rank_states, rng_state())
        else:
            rank_states = [rng_state()]
        if self.rank == 0:
            state = self.state()
            check_finite(state["model"], "the tokenizer's weights", self.step)
            write_checkpoint(self.run_dir, self.step, state, rank_states)
            self.export()
            commit(self.run_dir, self.step, keep=self.config.keep_checkpoints)
        distributed.barrier()

    def export(self) -> None:
        """The run directory's model.safetensors (its config.json is the training config, which holds the model's)."""
        export_weights(self.model.state_dict(), self.run_dir, self.step, {"kind": "t2v-video-tokenizer"})

    def resume(self) -> None:
        """Load the checkpoint `latest` names and this rank's RNG state; redo the export if a kill left it behind."""
        state, rank_state = load_checkpoint(latest_checkpoint(self.run_dir), self.rank,
                                            required=("step", "model", "discriminator", "opt_g", "opt_d"))
        self.model.load_state_dict(state["model"])
        self.loss.discriminator.load_state_dict(state["discriminator"])
        for name in ("opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
            match_layouts(getattr(self, name))
        self.step = state["step"]
        self.guard = NonFiniteGuard(self.config.max_skipped_steps, **state.get("guard", {}))
        if rank_state is not None:
            set_rng_state(rank_state)
        if self.rank == 0:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
            if exported_step(self.run_dir) != self.step:
                self.export()

    # 3. Evaluation ------------------------------------------------------------------------------------------
    def evaluate(self) -> EvalResult | None:
        """Held-out metrics and samples on rank 0; RNG-neutral, so evaluating never changes the training run."""
        result = None
        saved = rng_state()
        if self.rank == 0:
            result = evaluate(self.model, self.eval_set, self.config.data.eval_clips, self.device)
            write_samples(self.model, self.eval_set, self.config.num_samples, self.run_dir / "samples",
                          f"step_{self.step:08d}", fps=self.config.data.fps or 8.0, device=self.device)
        set_rng_state(saved)
        distributed.barrier()
        return result


def train(config: TokenizerTrainConfig, run_dir: str | Path, resume: bool = False) -> EvalResult | None:
    """Train a tokenizer into `run_dir` (config.json, model.safetensors, metrics.jsonl, samples/, checkpoints/).

    A fresh run needs a new or empty `run_dir`, `resume` one with a checkpoint; the directory is locked meanwhile
    (rundir.py), and a fresh run that fails before its first checkpoint leaves nothing behind."""
    run_dir = Path(run_dir)
    with rundir.claimed(run_dir, resume):
        trainer = Trainer(config, run_dir)
        if resume:
            trainer.resume()
        if trainer.rank == 0:
            write_config(run_dir / "config.json", config)
        distributed.barrier()
        return _train_loop(trainer, config, run_dir)


def _train_loop(trainer: Trainer, config: TokenizerTrainConfig, run_dir: Path) -> EvalResult | None:
    result = None
    log = RunLog(run_dir / "metrics.jsonl" if trainer.rank == 0 else None, f"tokenizer {config.name}", config.steps,
                 trainer.step)
    started = time.time()
    # closing: the workers end with the loop, even on error
    with log, closing(trainer.batches(trainer.step)) as batches:
        for micro_batches in batches:
            logs = trainer.train_step(*micro_batches)
            trainer.step += 1
            record: dict[str, Any] = {}
            if log.due(trainer.step, config.log_every, at_end=False):
                logs = trainer.host_logs(logs)
                record = {"step": trainer.step, "time": round(time.time() - started, 2), **logs}
                log.advance(loss=f"{logs['loss']:.4f}", l1=f"{logs['l1']:.4f}")
            else:
                log.advance()
            if log.due(trainer.step, config.eval_every):
                result = trainer.evaluate()
                if result is not None:
                    record = {"step": trainer.step, "time": round(time.time() - started, 2),
                              **trainer.host_logs(logs), **result.as_dict()}
                    log.say(f"step {trainer.step}: {result.summary()}")
            if record:
                log.write(record)
            if log.due(trainer.step, config.checkpoint_every):
                log.sync()  # the step's lines are durable before `latest` moves
                trainer.save()
    trainer.settle()
    if trainer.skipped:
        print(skipped_message(trainer.skipped, trainer.rank, trainer.world))
    if result is not None and result.skipped:  # the held-out files the evaluations left out
        print(skipped_message(result.skipped, trainer.rank, trainer.world, "held-out"))
    if trainer.guard.total and trainer.rank == 0:
        print(f"skipped {trainer.guard.total} steps with a NaN or inf loss or gradient (see 'skipped_steps' in "
              f"{run_dir / 'metrics.jsonl'})")
    distributed.teardown()
    return result


def add_mean(total: dict[str, torch.Tensor], logs: dict[str, torch.Tensor], count: int) -> None:
    """Add one micro-batch's `logs` to `total`, each value divided by the micro-batches' `count`."""
    for name, value in logs.items():
        total[name] = total[name] + value / count if name in total else value / count


def skipped_message(skipped: dict[str, str], rank: int, world: int, kind: str = "") -> str:
    """'skipped 2 unreadable or too-short files: …' (of `kind`, e.g. held-out) with one line per file (each rank
    reports its own)."""
    where = f" on rank {rank}" if world > 1 else ""
    lines = [f"skipped {len(skipped)} unreadable or too-short {kind + ' ' if kind else ''}files{where}:"]
    return "\n".join(lines + [f"  {path}: {reason}" for path, reason in sorted(skipped.items())])

