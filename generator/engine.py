"""The DeepSpeed side of generator training: the process group, the engine (our AdamW that skips non-finite
steps, the warmup + cosine schedule), a checkpoint loader that unpickles no code, the conversion to DeepSpeed's
universal checkpoint, ZeRO-3's gathered parameters.

The only module that imports deepspeed (inside functions, so configs and recipes load without it). A plain process
gets rank 0 of 1 for the call (`launcher_env`); on CPU, DeepSpeed's shared-memory all-reduce op
(`deepspeed_shm_comm`, 0.5–2 min to compile) is marked unavailable first: only inference tensor parallelism uses it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import torch

from t2v.core.atomic import atomic_directory
from t2v.core.lr_schedule import lr_factor
from t2v.generator.config import GeneratorTrainConfig
from t2v.generator.model import VideoGenerator


@contextlib.contextmanager
def launcher_env() -> Iterator[bool]:
    """Keep a launcher's variables (yields True); a plain process gets rank 0 of 1 on a free local port for the
    call (yields False)."""
    if "WORLD_SIZE" in os.environ:
        yield True
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port)}
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield False
    finally:
        for name in added:
            os.environ.pop(name, None)


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
