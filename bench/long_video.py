"""Benchmark: videos of any length on the shapes verifier (issue 4's acceptance). Prints tables and writes JSON
(every video's checks: a per-video dump, which .gitignore keeps out of git; docs/RESULTS.md holds the summaries).

1. Long generation: `--num` seen captions (spread over colours, shapes, directions and speeds), each streamed by
   `pipeline.generate` to `--frames` frames and checked per segment as its frames arrive (only the current
   segment is held, `verify_long.SegmentStream`). Per segment: verifier accuracy, seconds per frame (the time the
   generator took for each chunk, spread over its frames; checking is not counted) and memory (the process's
   RSS when the segment completes, via psutil when installed, else its peak so far; on CUDA the segment's peak
   allocation). Then one video of `--short` (129) frames and one of `--frames`, each in a fresh interpreter, for
   clean peak RSS figures.
2. Prompt change: the schedule [0: caption, AT: the same object moving at right angles] for `--num` captions;
   the fraction whose new direction `direction_change_frame` finds within 16 frames of AT (AT = `--segment`).
3. Extension: `--num` clips the model never saw (held-out compositions and seen ones alternately, rendered from
   seed 10_000, which no training set uses), each a training clip long; `pipeline.extend(clip, caption,
   frames=--extend-frames)`, and `check_video` on the continuation with either sign.
4. Ceiling: the same verifier, per segment, on the pipeline's tokenizer's reconstructions of `--num` true clips
   of `--ceiling-frames` frames (after the mp4 round trip of the training data): the most a generator writing
   these codes can score (the true clips pass every segment).
Targets (printed beside the figures): the last segment's accuracy ≥ 90% of the first's; its seconds per frame
≤ 1.2× the second segment's (the first holds the prefill); the peak RSS (on a GPU: the peak CUDA allocation) at
`--frames` ≤ 1.2× the one at `--short`.

    python bench/long_video.py runs/shapes/pipeline                  # 16 videos of 1025 frames
    python bench/long_video.py runs/shapes/pipeline --quick          # a smoke run: 2 videos of 129 frames
    python bench/long_video.py runs/shapes/pipeline --only-ceiling   # just 4., on the pipeline's tokenizer
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from report import add_device_arguments  # bench/ is the script's directory, so on sys.path
from t2v.generator.pipeline import TextToVideo
from t2v.generator.prompts import PromptChange
from t2v.recipes.shapes.dataset import Caption, captions_of_split, render_clip, split_of
from t2v.recipes.shapes.evaluate import reconstruct_clip
from t2v.recipes.shapes.verify import check_video, format_table, score
from t2v.recipes.shapes.verify_long import (SegmentStream, check_long_video, direction_change_frame, format_segments,
                                            score_segments)
from t2v.recipes.shipped import resolve_pipeline
from t2v.core.atomic import atomic_write_text

UNSEEN_SEED = 10_000  # dataset seed of the extension clips: training sets use small ones
TURNS = {"left": ("up", "down"), "right": ("down", "up"), "up": ("left", "right"), "down": ("right", "left")}
FRESH = ("import json, os, runpy, sys; sys.path.insert(0, os.path.dirname(sys.argv[1])); "
         "bench = runpy.run_path(sys.argv[1]); "
         "print(json.dumps(bench['peak_memory'](**json.loads(sys.argv[2]))))")


# --------------------------------------------------------------------------------------------- helpers
def spread_captions(num: int, split: str = "seen", seed: int = 0) -> list[Caption]:
    """`num` captions of a split, each the one whose colour, shape, direction and speed are least used so far."""
    captions = captions_of_split(split)
    pool = [captions[i] for i in np.random.default_rng(seed).permutation(len(captions))]
    picked: list[Caption] = []
    used: Counter = Counter()
    for _ in range(num):
        fresh = [c for c in pool if c not in picked] or pool
        best = min(fresh, key=lambda c: sum(used[v] for v in (c.color, c.shape, c.direction, c.speed)))
        picked.append(best)
        used.update((best.color, best.shape, best.direction, best.speed))
    return picked


def turned(caption: Caption) -> Caption:
    """The same object moving at right angles (a seen caption when one of the two is)."""
    options = [Caption(caption.color, caption.shape, d, caption.speed) for d in TURNS[caption.direction]]
    return next((c for c in options if split_of(c) == "seen"), options[0])


def rss_mib() -> float:
    """The process's resident memory now (psutil), else its peak so far (resource), MiB."""
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """The process's peak resident memory, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def timed(chunks: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
    """Each chunk with the seconds the iterator took to make it (the consumer's time is not counted)."""
    while True:
        start = time.perf_counter()
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk, time.perf_counter() - start


def load(directory: str | Path, device: str, dtype: str = "auto") -> TextToVideo:
    """A pipeline directory's pipeline, on `device` in `dtype` (names as the CLI's --device / --dtype)."""
    from t2v.core.precision import resolve

    return TextToVideo.from_pretrained(directory).to(*resolve(device, dtype))


# --------------------------------------------------------------------------------------------- 1. long videos
def long_generation(pipeline: TextToVideo, captions: list[Caption], frames: int, segment: int = 64,
                    window: int | None = None, seed: int = 0) -> dict:
    """Per-segment verifier scores, seconds per frame and memory over streamed videos of `frames` frames."""
    cuda = next(pipeline.generator.parameters()).is_cuda
    all_checks, seconds, counts, memory, cuda_peak = [], Counter(), Counter(), Counter(), Counter()
    for number, caption in enumerate(captions):
        stream, done, checks = SegmentStream(caption, frames, segment), 0, []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        chunks = pipeline.generate(caption.text, frames=frames, window=window, seed=seed + number)
        for chunk, secs in timed(chunks):
            # 1. time: the chunk's seconds spread over its frames, each frame counted in the segment it starts
            for frame in range(done, done + chunk.shape[1]):
                index = min(frame // segment, len(stream.bounds) - 1)
                seconds[index] += secs / chunk.shape[1]
                counts[index] += 1
            done += chunk.shape[1]
            # 2. checks of the segments this chunk completes, and memory when each completes
            for check in stream.push(chunk[0]):
                index = len(checks)
                checks.append(check)
                memory[index] = max(memory[index], rss_mib())
                if cuda:
                    cuda_peak[index] = max(cuda_peak[index], torch.cuda.max_memory_allocated() / 2**20)
                    torch.cuda.reset_peak_memory_stats()
        all_checks.append(checks)
    rows = score_segments(all_checks)
    for row in rows:
        index = row["segment"]
        row.update(s_per_frame=seconds[index] / max(counts[index], 1), rss_mib=memory[index],
                   cuda_peak_mib=cuda_peak[index] if cuda else None)
    videos = [{"caption": caption.text, "segments": [c.to_dict() for c in checks]}
              for caption, checks in zip(captions, all_checks)]
    return {"frames": frames, "segment": segment, "window": window or pipeline.window, "segments": rows,
            "videos": videos}


def peak_memory(directory: str, prompt: str, frames: int, window: int | None, seed: int, device: str,
                threads: int | None, dtype: str = "auto") -> dict:
    """Generate one video in this process and drop its frames: peak RSS (and CUDA allocation), seconds. Meant for
    a fresh interpreter (`fresh_peak_memory`), where nothing else has raised the peak."""
    if threads:
        torch.set_num_threads(threads)
    pipeline = load(directory, device, dtype)
    loaded = peak_rss_mib()
    start = time.perf_counter()
    for _ in pipeline.generate(prompt, frames=frames, window=window, seed=seed):
        pass
    cuda = torch.cuda.max_memory_allocated() / 2**20 if pipeline.device.type == "cuda" else None
    return {"frames": frames, "peak_rss_mib": peak_rss_mib(), "loaded_rss_mib": loaded, "cuda_peak_mib": cuda,
            "seconds": time.perf_counter() - start}


def fresh_peak_memory(**kwargs) -> dict:
    """`peak_memory(**kwargs)` in a fresh Python process."""
    done = subprocess.run([sys.executable, "-c", FRESH, __file__, json.dumps(kwargs)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the memory run of {kwargs['frames']} frames failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- 2. prompt change
def prompt_change(pipeline: TextToVideo, captions: list[Caption], at: int = 64, within: int = 16,
                  horizon: int = 16, window: int | None = None, seed: int = 0) -> dict:
    """Videos whose prompt turns the motion at frame `at`: how many show the new direction within `within`."""
    records = []
    for number, caption in enumerate(captions):
        after = turned(caption)
        schedule = [PromptChange(0, caption.text), PromptChange(at, after.text)]
        video = np.concatenate(list(pipeline.generate(schedule, frames=at + within + horizon + 1, window=window,
                                                      seed=seed + number)), axis=1)[0]  # (T, H, W, 3)
        found = direction_change_frame(video, after, at, within, horizon)
        records.append({"before": caption.text, "after": after.text, "found_at": found,
                        "before_passed": check_video(video[:at + 1], caption).passed})
    num = len(records)
    return {"at": at, "within": within, "num": num,
            "found_fraction": sum(r["found_at"] is not None for r in records) / num if num else None,
            "before_passed_fraction": sum(r["before_passed"] for r in records) / num if num else None,
            "videos": records}


# --------------------------------------------------------------------------------------------- 3. extension
def extension(pipeline: TextToVideo, num: int, frames: int = 64, seed: int = 0) -> dict:
    """Extend `num` unseen clips (held-out and seen captions alternately) and check the continuations."""
    heldout, seen = spread_captions(-(-num // 2), "heldout"), spread_captions(num // 2, "seen")
    captions = [c for pair in zip(heldout, [*seen, None]) for c in pair if c is not None][:num]
    size, context = tuple(pipeline.info.size), pipeline.info.frames
    checks: dict[str, list] = {"heldout": [], "seen": []}
    records = []
    for number, caption in enumerate(captions):
        clip = render_clip(caption, context, size, np.random.default_rng([UNSEEN_SEED, number]))
        continuation = np.concatenate(list(pipeline.extend(clip, caption.text, frames=frames, seed=seed + number)),
                                      axis=1)[0]  # (frames, H, W, 3)
        check = check_video(continuation, caption, either_sign=True)
        checks[split_of(caption)].append(check)
        records.append({"caption": caption.text, "split": split_of(caption), **check.to_dict()})
    scores = {split: score(c) for split, c in checks.items()}
    scores["all"] = score(checks["heldout"] + checks["seen"])
    return {"frames": frames, "context_frames": context, "scores": scores, "videos": records}


# --------------------------------------------------------------------------------------------- 4. ceiling
def reconstruction_ceiling(pipeline: TextToVideo, captions: list[Caption], frames: int, segment: int = 64,
                           seed: int = 0) -> dict:
    """Per-segment verifier scores of the pipeline's tokenizer on true clips of `frames` frames (unseen ones)."""
    size, checks = tuple(pipeline.info.size), []
    with tempfile.TemporaryDirectory() as work:
        for number, caption in enumerate(captions):
            clip = render_clip(caption, frames, size, np.random.default_rng([UNSEEN_SEED, 1, seed, number]))
            checks.append(check_long_video(reconstruct_clip(pipeline.video_tokenizer, clip, work), caption, segment))
    return {"frames": frames, "segments": score_segments(checks)}


# --------------------------------------------------------------------------------------------- report
def _target(ratio: float | None, bound: float, at_least: bool, **extra) -> dict:
    met = None if ratio is None else (ratio >= bound if at_least else ratio <= bound)
    return {"ratio": ratio, "bound": f"{'>=' if at_least else '<='} {bound}", "met": met, **extra}


def targets(long: dict, memory: dict) -> dict:
    """Issue 4's three targets: each measured ratio, its bound and whether it is met (None: not measurable). The
    memory one compares CUDA peaks on a GPU, else peak RSS."""
    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    rows = long["segments"]
    first, second, last = rows[0], rows[min(1, len(rows) - 1)], rows[-1]
    measure = "cuda_peak_mib" if memory["long"]["cuda_peak_mib"] is not None else "peak_rss_mib"
    peaks = ratio(memory["long"][measure], memory["short"][measure])
    return {"last_over_first_accuracy": _target(ratio(last["overall"], first["overall"]), 0.9, True),
            "last_over_second_s_per_frame": _target(ratio(last["s_per_frame"], second["s_per_frame"]), 1.2, False),
            "long_over_short_peak_memory": _target(peaks, 1.2, False, measure=measure)}


def print_report(report: dict) -> None:
    long, memory = report["long"], report["memory"]
    print(f"1. {len(long['videos'])} videos of {long['frames']} frames, window {long['window']} latent frames\n")
    print(format_segments(long["segments"], extra=["s_per_frame", "rss_mib"]))
    print("\nfresh-process peak RSS: " + ", ".join(
        f"{m['frames']} frames {m['peak_rss_mib']:.0f} MiB (+{m['peak_rss_mib'] - m['loaded_rss_mib']:.0f} over the "
        f"loaded pipeline, {m['seconds']:.1f} s)"
        for m in (memory["short"], memory["long"])))
    for name, target in report["targets"].items():
        shown = "-" if target["ratio"] is None else f"{target['ratio']:.3f}"
        verdict = {True: "met", False: "NOT met", None: "not measurable"}[target["met"]]
        print(f"  {name:<30} {shown:>7}  target {target['bound']:<7} {verdict}")
    change = report["prompt_change"]
    found = "-" if change["found_fraction"] is None else f"{100 * change['found_fraction']:.1f}%"
    print(f"\n2. prompt change at frame {change['at']}: new direction found within {change['within']} frames in "
          f"{found} of {change['num']} videos")
    print(f"\n3. extension by {report['extension']['frames']} frames of unseen clips (either sign):\n")
    print(format_table(report["extension"]["scores"]))
    print_ceiling(report["ceiling"])


def print_ceiling(ceiling: dict) -> None:
    print(f"\n4. ceiling: the tokenizer's reconstructions of true {ceiling['frames']}-frame clips\n")
    print(format_segments(ceiling["segments"]))


def save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=str, help="a pipeline directory or the name of a shipped one "
                        "(`shapes`)")
    parser.add_argument("--num", type=int, default=16, help="videos per measurement")
    parser.add_argument("--frames", type=int, default=1025, help="length of the long videos")
    parser.add_argument("--short", type=int, default=129, help="length of the memory baseline video")
    parser.add_argument("--segment", type=int, default=64, help="frames per checked segment (and the prompt change)")
    parser.add_argument("--extend-frames", type=int, default=64)
    parser.add_argument("--ceiling-frames", type=int, default=129, help="length of the reconstructed true clips")
    parser.add_argument("--window", type=int, default=None, help="latent frames kept (default: the pipeline's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 videos, 129 frames, short 65")
    parser.add_argument("--only-ceiling", action="store_true", help="measure only 4., the tokenizer's ceiling")
    parser.add_argument("--out", type=Path, default=Path("bench/results/long_video.json"))
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    args.pipeline = resolve_pipeline(args.pipeline)
    if args.quick:
        args.num, args.frames, args.short, args.ceiling_frames = 2, 129, 65, 65
    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline = load(args.pipeline, args.device, args.dtype)
    captions = spread_captions(args.num, "seen", args.seed)
    if args.only_ceiling:
        report = {"pipeline": str(args.pipeline), "device": str(pipeline.device), "dtype": str(pipeline.dtype),
                  "num": args.num, "seed": args.seed,
                  "ceiling": reconstruction_ceiling(pipeline, captions, args.ceiling_frames, args.segment, args.seed)}
        save(report, args.out)
        print_ceiling(report["ceiling"])
        print(f"\nJSON → {args.out}")
        return report

    long = long_generation(pipeline, captions, args.frames, args.segment, args.window, args.seed)
    fresh = dict(directory=str(args.pipeline), prompt=captions[0].text, window=args.window, seed=args.seed,
                 device=args.device, dtype=args.dtype, threads=args.threads)
    memory = {"short": fresh_peak_memory(frames=args.short, **fresh), "long": fresh_peak_memory(frames=args.frames,
                                                                                                   **fresh)}
    report = {"pipeline": str(args.pipeline), "device": str(pipeline.device), "dtype": str(pipeline.dtype),
              "num": args.num, "seed": args.seed,
              "long": long, "memory": memory, "targets": targets(long, memory),
              "prompt_change": prompt_change(pipeline, captions, args.segment, window=args.window, seed=args.seed),
              "extension": extension(pipeline, args.num, args.extend_frames, args.seed),
              "ceiling": reconstruction_ceiling(pipeline, captions, args.ceiling_frames, args.segment, args.seed)}
    save(report, args.out)
    print_report(report)
    print(f"\nJSON → {args.out}")
    return report


if __name__ == "__main__":
    main()
