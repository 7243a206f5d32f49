"""Benchmark: latent-frame generation speed of the generator's sampling strategies, on random weights.

For each preset (default `tiny` and `B`, the `shapes` recipe's vocabulary: 1,000 codes, ~100 text pieces, a 12-piece
caption so a 14-id prefix) and a latent grid (default a 64×64, 17-frame clip: 5 latent frames of 8×8 = 320 ids):

(a) `token`: `sample_frames` (KV cache, one id at a time), no guidance; `token_cfg`: the same with guidance (2 rows
    per video); `parallel_K` / `parallel_K_cfg`: a "masked" generator of the same sizes (random weights: speed only)
    drawing each latent frame in K passes of a query frame (`decode_frame_parallel`), K = h·w / n for each n of
    `--fewer` (default 8 and 64: 8 and 1 passes for an 8×8 frame);
(b) `generate`: the same weights in a `transformers` `Qwen2ForCausalLM` (the Qwen2-VL text decoder's parameter layout;
    with 1D positions the same compute, checked on logits below), `generate()` with its own KV cache, sampling
    (top_k=0), min_new_tokens = max_new_tokens so every run makes the whole clip;
(c) `uncached`: the whole sequence recomputed for every new id; for big presets only every `--uncached-stride`-th
    step is timed and the total extrapolated (step cost is linear in length; the JSON says so);
(d) `bound`: bytes read per decode step (every weight a step touches + the KV cache, averaged over the clip) ÷ the
    read bandwidth measured here (a `sum` over a buffer as large as those weights, and over 1 GiB for DRAM).

Each at every batch of `--batches` (default 1 and 16 videos at once); (c) and (d) at batch 1 only. (a) and (b) run
interleaved (one clip each per round, `--repeats` rounds after a warm-up round), so that other work on the machine
slows them alike; a figure is the median (every run is in the JSON); the bandwidth is the best of its runs.
Tokens/s counts the clip's video ids of every video, prefill included; ms per latent frame is the clip's time ÷ its
latent frames. Prints a table and writes JSON.

    python bench/sample_speed.py                                   # tiny and B, 5×8×8, 1 thread
    python bench/sample_speed.py --presets tiny --grid 2 4 4 --threads 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from t2v.generator.model import VideoGenerator
from t2v.generator.config import preset
from t2v.generator.sample import SamplingConfig, draw, sample_frames
from t2v.generator.vocab import EOV, PAD
from report import add_device_arguments, device_of, synchronize

CAPTION = [3, 14, 15, 92, 65, 35]  # any pieces: speed does not depend on them


def timed_rounds(runs: dict[str, Callable[[], object]], repeats: int,
                 device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Wall times of `repeats` rounds of one call of each run, after a warm-up round (on CUDA, each until its queued
    work is done). Interleaved, so that other work on the machine slows every method alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def read_bandwidth(num_bytes: int, repeats: int = 15, device: torch.device | str = "cpu") -> float:
    """Bytes/s of a `sum` over a float32 buffer of `num_bytes` on `device` (the rate a weight-streaming decode step
    can reach); the best of `repeats`: other work on the machine only ever lowers it, and a bound should not move
    with that."""
    buffer = torch.ones(max(num_bytes // 4, 1 << 16), device=device)
    return buffer.numel() * 4 / min(timed_rounds({"sum": buffer.sum}, repeats, device)["sum"])


def step_bytes(model: VideoGenerator, rows: int, context: float) -> dict[str, float]:
    """Bytes one decode step reads: every weight but the embedding table (one row of it), and `rows` KV caches of
    `context` ids (keys and values of every layer)."""
    element = model.head.weight.element_size()
    embedding = model.decoder.embed_tokens.weight
    weights = (model.num_parameters() - embedding.numel() + rows * embedding.shape[1]) * element
    config = model.config
    kv = 2 * config.layers * rows * config.kv_heads * config.head_dim * context * element
    return {"weights": weights, "kv_cache": kv}


def hf_twin(model: VideoGenerator) -> Qwen2ForCausalLM:
    """A `Qwen2ForCausalLM` holding the same decoder weights; its LM head is ours on the video ids, zero elsewhere."""
    config, decoder = model.config, model.decoder.config
    twin = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=decoder.vocab_size, hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=decoder.max_position_embeddings, rms_norm_eps=decoder.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta}, tie_word_embeddings=False,
        pad_token_id=PAD, bos_token_id=None, eos_token_id=EOV, attn_implementation="sdpa"))
    missing, unexpected = twin.model.load_state_dict(model.decoder.state_dict(), strict=False)
    assert not unexpected and all("rotary" in name for name in missing), (missing, unexpected)
    with torch.no_grad():
        twin.lm_head.weight.zero_()
        twin.lm_head.weight[model.vocab.video_start:] = model.head.weight
    return twin.eval()


def check_twin(model: VideoGenerator, twin: Qwen2ForCausalLM, length: int = 40) -> float:
    """Largest logit difference between the two on 1D positions (the same on t, h and w): they compute the same."""
    device = model.head.weight.device
    ids = torch.randint(model.vocab.video_start, model.vocab.size, (1, length), device=device)
    positions = torch.arange(length, device=device).expand(3, -1)
    with torch.no_grad():
        ours = model(ids, positions)
        theirs = twin(ids).logits[..., model.vocab.video_start:]
    return (ours.float() - theirs.float()).abs().max().item()


def sampler(model: VideoGenerator, prefix: torch.Tensor, grid: tuple[int, int, int], cfg_scale: float,
            steps: int | None = None) -> Callable[[], list[torch.Tensor]]:
    """(a) one clip by `sample_frames` per call, with the generator's strategy (`steps` passes per latent frame for
    a "masked" one)."""
    config = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, cfg_scale=cfg_scale, steps=steps)
    generator = torch.Generator(prefix.device).manual_seed(0)
    return lambda: list(sample_frames(model, prefix, grid, config, generator))


def generate(twin: Qwen2ForCausalLM, prefix: torch.Tensor, new: int) -> Callable[[], torch.Tensor]:
    """(b) one clip by `generate()` per call, checked once to decode with its KV cache."""
    kwargs = dict(attention_mask=torch.ones_like(prefix), max_new_tokens=new, min_new_tokens=new, do_sample=True,
                  top_k=0, top_p=1.0, temperature=1.0, use_cache=True)
    with torch.no_grad():
        out = twin.generate(prefix, return_dict_in_generate=True, **kwargs)
    # Its cache holds every id but the last one drawn: each step ran one new id against it.
    assert out.sequences.shape[1] == prefix.shape[1] + new, out.sequences.shape
    assert out.cache.get_seq_length() == prefix.shape[1] + new - 1

    def run() -> torch.Tensor:
        with torch.no_grad():
            return twin.generate(prefix, **kwargs)
    return run


def time_uncached(model: VideoGenerator, prefix: torch.Tensor, grid: tuple[int, int, int], stride: int,
                  repeats: int) -> float:
    """Seconds to make the clip recomputing the whole sequence per id; steps 0, stride, 2·stride … are timed and
    each stands for the `stride` steps it starts (their cost grows linearly with length)."""
    t, h, w = grid
    vocab, config = model.vocab, SamplingConfig(cfg_scale=1.0)
    positions = torch.cat([vocab.prefix_positions(), vocab.video_positions(0, t, h, w)], dim=1)  # (3, P + t*h*w)
    codes = torch.randint(0, vocab.codebook_size, (1, t * h * w), device=prefix.device)
    ids, positions = torch.cat([prefix, vocab.video_ids(codes)], dim=1), positions.to(prefix.device)

    def step(n: int) -> None:
        length = prefix.shape[1] + n
        draw(model(ids[:, :length], positions[:, :length], logits_from=length - 1)[:, -1], config, None)

    total = 0.0
    with torch.no_grad():
        for n in range(0, t * h * w, stride):
            times = timed_rounds({"step": lambda: step(n)}, repeats, prefix.device)["step"]
            total += min(stride, t * h * w - n) * statistics.median(times)
    return total


def bench_preset(name: str, grid: tuple[int, int, int], args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    config = preset(name, text_size=args.text_size, codebook_size=args.codebook, max_text_len=args.max_text_len,
                    sizes=[list(grid[1:])], rates=[8.0])
    device, dtype = args.device_dtype
    model = VideoGenerator(config).eval()
    torch.manual_seed(0)
    parallel = VideoGenerator(dataclasses.replace(config, decoding="masked")).eval()  # the same sizes, a MASK id
    twin = hf_twin(model).to(device, dtype)
    model.to(device, dtype), parallel.to(device, dtype)
    vocab, tokens, frame_ids = model.vocab, grid[0] * grid[1] * grid[2], grid[1] * grid[2]
    context = vocab.prefix_len + (tokens - 1) / 2  # mean KV length over the decode steps
    stride = 1 if name in args.uncached_full else args.uncached_stride
    weight_bytes = step_bytes(model, 1, 0)["weights"]
    bandwidth = read_bandwidth(weight_bytes, device=device)
    steps = sorted({max(1, frame_ids // k) for k in args.fewer}, reverse=True)  # passes per latent frame
    batches = {}
    for batch in args.batches:
        prefix = vocab.prefix(CAPTION, grid[1:], 8.0)[None].repeat(batch, 1).to(device)
        runs = {"generate": generate(twin, prefix, tokens), "token": sampler(model, prefix, grid, 1.0),
                "token_cfg": sampler(model, prefix, grid, args.cfg_scale)}
        for k in steps:
            runs[f"parallel_{k}"] = sampler(parallel, prefix, grid, 1.0, k)
            runs[f"parallel_{k}_cfg"] = sampler(parallel, prefix, grid, args.cfg_scale, k)
        times = timed_rounds(runs, args.repeats, device)
        seconds = {method: statistics.median(values) for method, values in times.items()}
        if batch == 1:
            seconds["uncached"] = time_uncached(model, prefix, grid, stride, max(1, args.repeats // 2))
        bandwidth = max(bandwidth, read_bandwidth(weight_bytes, device=device))  # before and after the runs: the best
        rows = {}
        for method, secs in seconds.items():
            passes = int(method.split("_")[1]) if method.startswith("parallel") else frame_ids
            row = {"passes_per_frame": passes, "guidance": method.endswith("_cfg"), "seconds": round(secs, 4),
                   "tokens_per_s": round(batch * tokens / secs, 2),
                   "ms_per_latent_frame": round(1000 * secs / grid[0], 2),
                   "over_generate": round(seconds["generate"] / secs, 2),
                   "runs_s": [round(t, 4) for t in times.get(method, [])]}
            if batch == 1 and passes == frame_ids:  # one id per pass: the memory-bandwidth bound applies
                read = step_bytes(model, 2 if row["guidance"] else 1, context)
                bound = bandwidth / sum(read.values())
                row.update(bound_tokens_per_s=round(bound, 1), percent_of_bound=round(100 * tokens / secs / bound, 1))
            rows[method] = row
        batches[str(batch)] = rows
    read = step_bytes(model, 1, context)
    return {"parameters": model.num_parameters(), "tokens": tokens,
            "bytes_per_step": {k: int(v) for k, v in read.items()}, "read_bandwidth_gb_s": round(bandwidth / 1e9, 2),
            "twin_max_logit_diff": check_twin(model, twin),
            "uncached_steps_timed": len(range(0, tokens, stride)), "uncached_extrapolated": stride > 1,
            "batches": batches}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "B"])
    parser.add_argument("--grid", nargs=3, type=int, default=[5, 8, 8], metavar=("T", "H", "W"))
    parser.add_argument("--codebook", type=int, default=1000)
    parser.add_argument("--text-size", type=int, default=100)
    parser.add_argument("--max-text-len", type=int, default=12)
    parser.add_argument("--cfg-scale", type=float, default=3.0, help="guidance scale of the guided rows")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16], help="videos sampled at once")
    parser.add_argument("--fewer", nargs="+", type=int, default=[8, 64],
                        help="the parallel strategy at h·w / n passes per latent frame, for each n")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--uncached-stride", type=int, default=32, help="time every n-th uncached step")
    parser.add_argument("--uncached-full", nargs="*", default=["tiny"], help="presets whose every uncached "
                        "step is timed")
    parser.add_argument("--out", type=Path, default=Path("bench/results/sample_speed.json"))
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    args.device_dtype = device_of(args)
    torch.set_num_threads(args.threads)
    grid = tuple(args.grid)

    dram = read_bandwidth(1 << 30, device=args.device_dtype[0])
    results = {name: bench_preset(name, grid, args) for name in args.presets}
    device, dtype = args.device_dtype
    report = {"grid": grid, "threads": args.threads, "torch": torch.__version__, "cpu": platform.processor()
              or platform.machine(), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "dram_read_bandwidth_gb_s": round(dram / 1e9, 2), "repeats": args.repeats,
              "cfg_scale": args.cfg_scale, "targets": {"parallel_over_generate": 5.0, "tiny_clip_cfg_seconds": 0.1,
                                                       "passes_per_frame_at_most": grid[1] * grid[2] // 8},
              "presets": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    print(f"grid {grid}, {args.threads} thread(s), DRAM read {dram / 1e9:.1f} GB/s, guidance scale "
          f"{args.cfg_scale:g} on _cfg rows\n")
    print("| preset | batch | method | passes/frame | tokens/s | ms/latent frame | clip s | × generate() | % of bound "
          "|\n|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        for batch, rows in result["batches"].items():
            for method, row in rows.items():
                print(f"| {name} | {batch} | {method} | {row['passes_per_frame']} | {row['tokens_per_s']} | "
                      f"{row['ms_per_latent_frame']} | {row['seconds']} | {row['over_generate']} | "
                      f"{row.get('percent_of_bound', '')} |")
    for name, result in results.items():
        mb = {k: round(v / 1e6, 1) for k, v in result["bytes_per_step"].items()}
        print(f"\n{name}: {result['parameters'] / 1e6:.1f}M parameters, a one-id step reads {mb} MB at "
              f"{result['read_bandwidth_gb_s']} GB/s; uncached: {result['uncached_steps_timed']} steps timed"
              f"{' (extrapolated)' if result['uncached_extrapolated'] else ''}; twin logits differ by "
              f"{result['twin_max_logit_diff']:.1e}")
    print(f"\nJSON: {args.out}")
    return report


if __name__ == "__main__":
    main()
