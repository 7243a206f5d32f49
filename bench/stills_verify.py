"""Benchmark: the stills motion check (recipes/stills/verify.py) on true clips: the fraction it passes, per motion
kind, split, size and rate, and how many seconds a clip takes to draw and to check. Prints a table and writes JSON.

Clip i of (kind, split, size, rate) draws its caption of that kind and its numbers from the generator seeded by
(seed, kind, split, H, fps, i). `--mp4` checks each clip after a round trip through an H.264 file (as a clip of
`t2v data stills` or a generated video is read back). `--tokenizer DIR` checks each clip after the tokenizer's round
trip (encode, decode): the motion a generator of its codes could at best show.

    python bench/stills_verify.py --num 25
    python bench/stills_verify.py --num 10 --mp4 --out bench/results/stills_verify_mp4.json
    python bench/stills_verify.py --num 25 --size 64 --fps 8 --tokenizer stills \
        --out bench/results/stills_verify_tokenizer.json
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
from report import write_report  # bench/ is the script's directory, on sys.path

from t2v.recipes.stills.dataset import KINDS, draw_caption, render_clip
from t2v.recipes.stills.photos import SPLITS
from t2v.recipes.stills.verify import check_clip
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import read_video, write_video


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=25, help="clips per kind, split, size and rate")
    parser.add_argument("--size", type=int, action="append", help="frame side (repeatable; default 64 and 128)")
    parser.add_argument("--fps", type=float, action="append", help="frame rate (repeatable; default 8 and 16)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mp4", action="store_true", help="check each clip after an H.264 round trip")
    parser.add_argument("--tokenizer", help="check each clip after this tokenizer's round trip (a directory, or "
                        "the name of a shipped one: stills)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/stills_verify.json"))
    args = parser.parse_args(argv)
    round_trip = tokenizer_round_trip(args.tokenizer) if args.tokenizer else None
    sizes, rates = args.size or [64, 128], args.fps or [8.0, 16.0]
    passed: dict[str, list[bool]] = defaultdict(list)
    by_condition: dict[str, list[bool]] = defaultdict(list)
    failures, draw_seconds, check_seconds = [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as temp:
        for kind, (s, split), side, fps in itertools.product(KINDS, enumerate(SPLITS), sizes, rates):
            for i in range(args.num):
                rng = np.random.default_rng([args.seed, KINDS.index(kind), s, side, int(fps), i])
                start = time.perf_counter()
                caption = draw_caption(rng, split, kind)
                clip = render_clip(caption, args.frames, (side, side), rng, fps)
                draw_seconds += time.perf_counter() - start
                if args.mp4:
                    clip = read_video(write_video(Path(temp) / "clip.mp4", clip, fps, overwrite=True))[0]
                if round_trip is not None:
                    clip = round_trip(clip)
                start = time.perf_counter()
                result = check_clip(clip, caption, fps)
                check_seconds += time.perf_counter() - start
                passed[kind].append(result["passed"])
                by_condition[f"{kind} {split} {side} {fps:g}"].append(result["passed"])
                if not result["passed"]:
                    failures.append({"caption": caption.text, "size": side, "fps": fps, "expected": result["expected"],
                                     "measured": result["measured"], "rates": result["rates"]})
    clips = sum(len(v) for v in passed.values())
    accuracy = {kind: float(np.mean(v)) for kind, v in passed.items()}
    print(f"{'kind':<10} {'clips':>6} {'passed':>7}")
    for kind in KINDS:
        print(f"{kind:<10} {len(passed[kind]):>6} {accuracy[kind]:>7.1%}")
    print(f"{clips} clips: {draw_seconds / clips:.3f} s to draw, {check_seconds / clips:.3f} s to check a clip; "
          f"{len(failures)} failed")
    write_report({"settings": {"num": args.num, "sizes": sizes, "rates": rates, "frames": args.frames,
                               "seed": args.seed, "mp4": args.mp4, "tokenizer": args.tokenizer,
                               "splits": list(SPLITS)},
                  "accuracy": accuracy, "clips": {kind: len(v) for kind, v in passed.items()},
                  "by_condition": {key: float(np.mean(v)) for key, v in by_condition.items()},
                  "seconds_per_clip": {"draw": draw_seconds / clips, "check": check_seconds / clips},
                  "failures": failures}, args.out)


def tokenizer_round_trip(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 (T, H, W, 3) → the same clip encoded and decoded by the tokenizer `spec` (on the CPU, float32)."""
    import torch

    from t2v.recipes.shipped import resolve_tokenizer
    from t2v.tokenizer.model import VideoTokenizer

    model = VideoTokenizer.from_pretrained(resolve_tokenizer(spec)).eval()

    @torch.no_grad()
    def round_trip(clip: np.ndarray) -> np.ndarray:
        return to_uint8(model.decode(model.encode(to_pixels(clip, "cpu")))[0])

    return round_trip


if __name__ == "__main__":
    main()
