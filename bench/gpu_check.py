"""GPU check: one prepared command that measures every stage on a device and writes JSON (≤ 8 minutes on one GPU).

1. peak: the best bf16 (n×n)·(n×n) matmul rate on the device (fp32 where the run computes in fp32), the
   denominator of every MFU below (n = 8192 on a GPU, 1024 with --quick).
2. tokenizer: training steps of the tokenizer trainer (tokenizer/train.py) on shapes clips drawn in memory, at the
   run's precision (bf16 autocast on CUDA): the B preset at 17×128×128, batch 4 (--quick: the tiny preset at
   5×32×32, batch 2). Step time (median of the timed steps after warm-up ones), peak device memory, FLOPs of one
   step (torch's FlopCounterMode: matmuls and convolutions, forward and backward) and MFU = FLOPs / time / peak.
3. generator: DeepSpeed training steps of the generator trainer (generator/train.py) on synthetic token shards, bf16
   on CUDA: the B preset with 64,000 codes, 5 latent frames of 32×32 ids (a 17×256×256 clip at spatial stride 8),
   batch 4 (--quick: the tiny preset, 1,000 codes, 2×4×4, batch 2): the same figures (the chunked loss included).
4. sampling: bench/sample_speed.py on the device: the tiny and B presets at batch 1 and 16, token by token, guided,
   and the parallel strategy (--quick: tiny, 2×4×4, batch 1).
5. recipe: the shapes recipe's quick run end to end on the device (`t2v recipe run shapes --quick`; --quick: toy
   sizes): wall time per stage and the verifier's scores.

Each part runs in turn; a failure is recorded with its message and the others still run (the exit status is 1 if
any failed). Prints a table and writes JSON.

    python bench/gpu_check.py                          # on a GPU
    python bench/gpu_check.py --device cpu --quick     # the smoke run the tests make
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from report import add_device_arguments, device_of, synchronize, write_report  # bench/ is on sys.path

SHAPES_DRAW = "t2v.recipes.shapes.dataset:draw_clips"


@dataclasses.dataclass
class Size:
    """What a run measures: the full check or the smoke run."""

    matmul: int
    tokenizer_preset: str
    clip: tuple[int, int, int]  # frames, H, W
    tokenizer_batch: int
    generator_preset: str
    codebook: int
    grid: tuple[int, int, int]  # latent frames, h, w
    generator_batch: int
    warmup: int
    steps: int


FULL = Size(matmul=8192, tokenizer_preset="B", clip=(17, 128, 128), tokenizer_batch=4, generator_preset="B",
            codebook=64000, grid=(5, 32, 32), generator_batch=4, warmup=3, steps=10)
QUICK = Size(matmul=1024, tokenizer_preset="tiny", clip=(5, 32, 32), tokenizer_batch=2, generator_preset="tiny",
             codebook=1000, grid=(2, 4, 4), generator_batch=2, warmup=1, steps=2)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """FLOP/s of the best of `repeats` (n×n)·(n×n) matmuls in `dtype` on `device`."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def step_figures(step: Callable[[], Any], device: torch.device, size: Size, peak: float) -> dict[str, Any]:
    """Median step time after warm-up steps, peak device memory, FLOPs of one step and MFU."""
    for _ in range(size.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(size.steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        step()
    seconds, flops = statistics.median(times), counter.get_total_flops()
    return {"step_seconds": round(seconds, 4), "steps_timed": size.steps,
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            if device.type == "cuda" else None,
            "flops_per_step": flops, "tflops_per_s": round(flops / seconds / 1e12, 3),
            "mfu_percent": round(100 * flops / seconds / peak, 1)}


def check_tokenizer(device: torch.device, dtype: torch.dtype, size: Size, peak: float, work: Path) -> dict:
    """2. The tokenizer trainer's steps on clips drawn in memory."""
    from t2v.recipes.shapes import tokenizer_config
    from t2v.tokenizer.config import preset
    from t2v.tokenizer.train import Trainer

    base = tokenizer_config()
    frames, height, width = size.clip
    config = dataclasses.replace(
        base, model=preset(size.tokenizer_preset), precision="bf16" if dtype == torch.bfloat16 else "fp32",
        steps=size.warmup + 2 * size.steps + 2, image_steps=0, decoder_steps=0, batch_size=size.tokenizer_batch,
        data=dataclasses.replace(base.data, num_frames=frames, size=(height, width), num_workers=0, eval_clips=1))
    trainer = Trainer(config, work / "tokenizer")
    if trainer.device != device:
        raise RuntimeError(f"the tokenizer trainer runs on {trainer.device}, not {device}: it takes the launcher's "
                           "device (CUDA when available); run with --device matching it")
    batch = trainer.batch(0)

    def step() -> None:
        trainer.train_step(batch)
        trainer.step += 1

    figures = step_figures(step, device, size, peak)
    params = sum(p.numel() for p in trainer.model.parameters())
    return {"preset": size.tokenizer_preset, "clip": list(size.clip), "batch": size.tokenizer_batch,
            "precision": config.precision, "parameters": params, **figures,
            "clips_per_s": round(size.tokenizer_batch / figures["step_seconds"], 2)}


def write_synthetic_shards(directory: Path, codebook: int, grid: tuple[int, int, int], clips: int = 64) -> Path:
    """Token shards of random codes with shapes captions (speed does not depend on the codes)."""
    from t2v.recipes.shapes.dataset import all_captions, split_of
    from t2v.tokenizer.shards import ShardWriter

    captions, rng = all_captions(), np.random.default_rng(0)
    writer = ShardWriter(directory, codebook)
    for i in range(clips):
        caption = captions[int(rng.integers(len(captions)))]
        writer.add(rng.integers(0, codebook, grid), {"caption": caption.text, "split": split_of(caption),
                                                      "path": f"clip{i}.mp4"})
    return writer.close({"fps": 8.0})


def check_generator(device: torch.device, dtype: torch.dtype, size: Size, peak: float, work: Path) -> dict:
    """3. The generator trainer's DeepSpeed steps on synthetic shards."""
    from t2v.core import rundir
    from t2v.generator.config import GeneratorDataConfig, GeneratorTrainConfig, preset
    from t2v.core.distributed import launcher_env
    from t2v.generator.train import Trainer

    shards = write_synthetic_shards(work / "shards", size.codebook, size.grid)
    steps = size.warmup + 2 * size.steps + 2
    config = GeneratorTrainConfig(
        name="gpu-check", model=preset(size.generator_preset), steps=steps, batch_size=size.generator_batch,
        precision="bf16" if dtype == torch.bfloat16 else "fp32", log_every=steps, checkpoint_every=steps,
        data=GeneratorDataConfig(shards=str(shards), train_split="seen", text_vocab_size=64, num_workers=1))
    run_dir = work / "generator"
    with rundir.claimed(run_dir, False), launcher_env():
        trainer = Trainer(config, run_dir, False)
        batches = trainer.batches()

        def step() -> None:
            trainer.train_step(next(batches), want_norm=False)
            trainer.step += 1

        figures = step_figures(step, device, size, peak)
        params = trainer.engine.module.num_parameters()
        tokens = size.generator_batch * (trainer.config.model.vocab.prefix_len + int(np.prod(size.grid)) + 1)
        batches.close()
    return {"preset": size.generator_preset, "codebook": size.codebook, "grid": list(size.grid),
            "batch": size.generator_batch, "precision": config.precision, "parameters": params, **figures,
            "tokens_per_s": round(tokens / figures["step_seconds"], 1)}


def check_sampling(device: torch.device, dtype: torch.dtype, quick: bool, work: Path) -> dict:
    """4. bench/sample_speed.py on the device: tokens/s and ms per latent frame of every strategy."""
    import sample_speed

    argv = ["--device", str(device), "--dtype", str(dtype).removeprefix("torch."), "--out",
            str(work / "sample_speed.json"), "--uncached-full"]
    argv += (["--presets", "tiny", "--grid", "2", "4", "4", "--batches", "1", "--fewer", "8", "--repeats", "1",
              "--uncached-stride", "16"] if quick else
             ["--presets", "tiny", "B", "--batches", "1", "16", "--fewer", "8", "64", "--repeats", "2",
              "--uncached-stride", "64"])
    report = sample_speed.main(argv)
    return {name: {batch: {method: {key: row[key] for key in ("passes_per_frame", "tokens_per_s",
                                                               "ms_per_latent_frame", "over_generate")}
                           for method, row in rows.items()}
                   for batch, rows in result["batches"].items()}
            for name, result in report["presets"].items()}


def check_recipe(device: torch.device, dtype: torch.dtype, quick: bool, work: Path) -> dict:
    """5. The shapes recipe's quick run, end to end (encode and evaluation on `device`; the trainers take CUDA
    whenever it is available)."""
    dtype_name = str(dtype).removeprefix("torch.")
    from t2v.recipes.shapes.run import run_config, run_recipe

    config = toy_recipe() if quick else run_config(quick=True)
    started = time.time()
    reports = run_recipe(work / "recipe", config, log=lambda line: None, device=str(device), dtype=dtype_name)
    stages = json.loads((work / "recipe" / "run.json").read_text())
    return {"seconds": round(time.time() - started, 1), "stages": stages,
            "overall": {split: report.get("overall") for split, report in reports.items()}}


def toy_recipe():
    """The recipe's stages at toy sizes: seconds on a CPU (the smoke run)."""
    from t2v.generator.config import GeneratorConfig
    from t2v.recipes.shapes import generator_config, tokenizer_config
    from t2v.recipes.evaluation import EvalConfig
    from t2v.recipes.shapes.run import RecipeRunConfig
    from t2v.tokenizer.config import QuantizerConfig, preset

    tokenizer = tokenizer_config("quick")
    tokenizer = dataclasses.replace(
        tokenizer, model=preset("tiny", channels=(8, 8, 16, 16), num_res_blocks=1,
                                quantizer=QuantizerConfig(fsq_levels=(4, 4, 4))),
        steps=3, image_steps=1, decoder_steps=1, image_batch_size=2, batch_size=1, log_every=1, eval_every=3,
        checkpoint_every=3, num_samples=1,
        data=dataclasses.replace(tokenizer.data, num_frames=5, size=(16, 16), eval_clips=1, num_workers=0))
    generator = dataclasses.replace(
        generator_config("quick"), steps=2, batch_size=2, log_every=1, checkpoint_every=2, sample_every=0,
        model=GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128, max_text_len=12))
    generator = dataclasses.replace(generator, data=dataclasses.replace(generator.data, window=2, num_workers=0))
    return RecipeRunConfig(tokenizer, generator, num_clips=8, long_clips=2, long_frames=9, heldout_clips=2,
                           eval=EvalConfig(num=2, batch=2, save_videos=1))


def run_part(name: str, part: Callable[[], dict], results: dict, failures: list[str]) -> None:
    started = time.time()
    try:
        results[name] = {**part(), "wall_seconds": round(time.time() - started, 1)}
        print(f"{name}: done in {time.time() - started:.0f} s", flush=True)
    except Exception as error:  # the check goes on: every part's result or failure is reported
        results[name] = {"error": f"{type(error).__name__}: {error}", "wall_seconds": round(time.time() - started, 1),
                         "traceback": traceback.format_exc()[-4000:]}
        failures.append(name)
        print(f"{name}: FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def format_table(results: dict) -> str:
    lines = ["| part | figures |", "|---|---|"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | FAILED: {result['error'][:120]} |")
        elif name in ("tokenizer", "generator"):
            memory = f", peak {result['peak_memory_gib']} GiB" if result.get("peak_memory_gib") is not None else ""
            lines.append(f"| {name} | {result['preset']} {result['precision']}: {result['step_seconds'] * 1000:.1f} "
                         f"ms/step, {result['tflops_per_s']} TFLOP/s, MFU {result['mfu_percent']}%{memory} |")
        elif name == "sampling":
            for preset, batches in result.items():
                if preset == "wall_seconds":
                    continue
                for batch, rows in batches.items():
                    speeds = ", ".join(f"{method} {row['tokens_per_s']:.0f}" for method, row in rows.items())
                    lines.append(f"| sampling {preset} batch {batch} | tokens/s: {speeds} |")
        elif name == "recipe":
            lines.append(f"| recipe | {result['seconds']} s, overall {result['overall']} |")
        elif name == "peak":
            lines.append(f"| peak | {result['tflops_per_s']} TFLOP/s ({result['dtype']} {result['n']}² matmul) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="toy sizes: the smoke run (seconds on a CPU)")
    parser.add_argument("--parts", nargs="+", default=["peak", "tokenizer", "generator", "sampling", "recipe"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_check.json"))
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    device, dtype = device_of(args)
    size = QUICK if args.quick else FULL
    results: dict[str, dict] = {}
    failures: list[str] = []
    measured: list[float] = []

    def peak() -> float:
        """The matmul peak, measured once (before the first part that needs it)."""
        if not measured:
            measured.append(matmul_peak(device, dtype, size.matmul))
        return measured[0]

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        parts = {"peak": lambda: {"tflops_per_s": round(peak() / 1e12, 2), "dtype": str(dtype).removeprefix("torch."),
                                  "n": size.matmul},
                 "tokenizer": lambda: check_tokenizer(device, dtype, size, peak(), work),
                 "generator": lambda: check_generator(device, dtype, size, peak(), work),
                 "sampling": lambda: check_sampling(device, dtype, args.quick, work),
                 "recipe": lambda: check_recipe(device, dtype, args.quick, work)}
        here = os.getcwd()
        os.chdir(work)  # the trainers and the recipe write nothing outside the work directory
        try:
            for name in args.parts:
                run_part(name, parts[name], results, failures)
        finally:
            os.chdir(here)
    report = {"date": time.strftime("%Y-%m-%d"), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "quick": args.quick, "failed": failures, "parts": results}
    print(format_table(results))
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
