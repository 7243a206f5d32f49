"""Benchmark: generator training speed (tokens/s) and model FLOPs utilisation on this machine.

Each case trains through `t2v.generator.train.train` (DeepSpeed engine, fp32 on CPU) on fake shards shaped like the
shapes recipe's (5×8×8 codes of a 1,000-entry codebook, 12-piece captions: 335-id sequences), in its own process:
one process, or two ranks under torchrun (gloo). Tokens/s is the median over the steps after the first two
(warm-up), all ranks together. Model FLOPs per token = 6·N + 12·layers·hidden·L (PaLM's count: N the parameters
without the input embedding, L the sequence length), so MFU = tokens/s × that / peak, with the peak a large fp32
matmul timed with the same total number of threads just before each case (the machine may be shared: the load
average is recorded too, and several threads in one process suffer most from a busy core).

    python bench/train_speed.py                    # tiny and B presets, 1 process and 2 ranks
    python bench/train_speed.py --presets tiny     # only tiny
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from report import write_report  # bench/ is the script's directory, so on sys.path

GRID, CODEBOOK, MAX_TEXT_LEN = (5, 8, 8), 1000, 12
# preset: (batch per rank, steps); B is ~25× the work of tiny per id, so it runs short and small.
CASES = {"tiny": (8, 12), "B": (2, 5)}
# (ranks, threads per rank): one process on every core, one process on one core, two one-thread ranks.
LAYOUTS = ((1, 2), (1, 1), (2, 1))


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` fp32 (n×n)·(n×n) matmuls with `threads` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(previous)
    return 2 * n**3 / best


def make_shards(directory: Path, clips: int = 256, grid: tuple[int, int, int] = GRID, codebook: int = CODEBOOK) -> Path:
    """Token shards of `clips` random code grids (t, h, w) with the shapes captions (also used by data_speed.py)."""
    from t2v.recipes.shapes.dataset import all_captions, split_of
    from t2v.tokenizer.shards import ShardWriter

    rng = np.random.default_rng(0)
    captions = all_captions()
    writer = ShardWriter(directory, codebook)
    for i in range(clips):
        caption = captions[i % len(captions)]
        writer.add(rng.integers(0, codebook, grid), {"caption": caption.text, "split": split_of(caption),
                                                      "path": f"clip{i}.mp4"})
    return writer.close({"fps": 8.0})


def worker(preset: str, shards: str, run_dir: str, batch: int, steps: int) -> None:
    """One training run (every rank runs this)."""
    from t2v.generator.config import preset as generator_preset
    from t2v.generator.train import train
    from t2v.generator.config import GeneratorDataConfig, GeneratorTrainConfig

    config = GeneratorTrainConfig(name=f"bench-{preset}", model=generator_preset(preset, max_text_len=MAX_TEXT_LEN),
                                  data=GeneratorDataConfig(shards=shards, train_split="seen", eval_split="heldout",
                                                            max_text_len=MAX_TEXT_LEN),
                                  steps=steps, batch_size=batch, log_every=1, checkpoint_every=10**6,
                                  keep_checkpoints=1, precision="fp32")
    train(config, run_dir)


def model_flops_per_token(preset: str) -> tuple[int, float]:
    """(parameters, training FLOPs per id) of `preset` at the benchmark's vocabulary and sequence length."""
    from t2v.generator.model import VideoGenerator
    from t2v.generator.config import preset as generator_preset

    config = generator_preset(preset, max_text_len=MAX_TEXT_LEN, codebook_size=CODEBOOK)
    with torch.device("meta"):
        model = VideoGenerator(config)
    params = model.num_parameters()
    length = config.vocab.sequence_len(*GRID)
    non_embedding = params - model.decoder.embed_tokens.weight.numel()
    return params, 6 * non_embedding + 12 * config.layers * config.hidden * length


def run_case(preset: str, ranks: int, threads: int, shards: Path, work: Path) -> dict:
    batch, steps = CASES[preset]
    run_dir = work / f"{preset}-{ranks}x{threads}"
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    args = [__file__, "--worker", preset, str(shards), str(run_dir), str(batch), str(steps)]
    if ranks > 1:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={ranks}",
                   "--master_addr=127.0.0.1", f"--master_port={port}", *args]
    else:
        command = [sys.executable, *args]
    started = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{preset} {ranks}x{threads} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(run_dir, ignore_errors=True)
    speeds = [row["tokens_per_s"] for row in rows[2:]] or [rows[-1]["tokens_per_s"]]
    return {"preset": preset, "ranks": ranks, "threads_per_rank": threads, "batch_per_rank": batch, "steps": steps,
            "tokens_per_s": statistics.median(speeds), "final_loss": rows[-1]["loss"],
            "wall_s": round(time.time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", default="bench/results/train_speed.json")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        preset, shards, run_dir, batch, steps = args.worker
        worker(preset, shards, run_dir, int(batch), int(steps))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        shards = make_shards(Path(tmp) / "shards")
        for preset in args.presets:
            params, flops = model_flops_per_token(preset)
            for ranks, threads in LAYOUTS:
                load, peak = os.getloadavg()[0], matmul_peak(ranks * threads)
                row = run_case(preset, ranks, threads, shards, Path(tmp))
                achieved = row["tokens_per_s"] * flops
                row.update(params=params, flops_per_token=flops, model_gflops=round(achieved / 1e9, 2),
                           peak_gflops=round(peak / 1e9, 1), mfu=round(achieved / peak, 4),
                           load_avg_before=round(load, 2))
                rows.append(row)
                print(f"{preset:>4} {ranks}×{threads}: {row['tokens_per_s']:9,.0f} tokens/s  "
                      f"MFU {row['mfu']:.1%}  ({row['wall_s']} s)", flush=True)

    header = (f"{'preset':>6} {'params':>7} {'ranks×threads':>13} {'batch':>5} {'tokens/s':>9} {'model GFLOP/s':>13} "
              f"{'peak GFLOP/s':>12} {'MFU':>6} {'load':>5}")
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(f"{row['preset']:>6} {row['params'] / 1e6:6.1f}M {row['ranks']:>9}×{row['threads_per_rank']:<3} "
              f"{row['batch_per_rank']:>5} {row['tokens_per_s']:9,.0f} {row['model_gflops']:13.1f} "
              f"{row['peak_gflops']:12.1f} {row['mfu']:6.1%} {row['load_avg_before']:5.1f}")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
              "torch": torch.__version__, "sequence_len": MAX_TEXT_LEN + 2 + int(np.prod(GRID)) + 1, "runs": rows}
    write_report(result, args.out)


if __name__ == "__main__":
    main()
