"""Benchmark: a generator's teacher-forced loss on held-out clips, per latent grid and frame rate, split into the
first latent frame (a video's start: where the object is drawn) and the later ones (its motion). Prints a table and
writes JSON.

Where `t2v eval` says how often whole videos pass, this says where the model is unsure: e.g. whether a generator
trained on several sizes and rates learned one of them less well than a generator trained on it alone. Only clips
of exactly `window` latent frames count (the recipe's short clips), so every row sees whole videos from their
start.

    python bench/generator_loss.py runs/shapes-multi/generator runs/shapes-multi/tokens --num 64
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from report import add_device_arguments, device_of, write_report  # bench/ is the script's directory, so on sys.path

from t2v.generator.data import IGNORE, TokenSequences
from t2v.generator.model import VideoGenerator
from t2v.generator.text import TextTokenizer
from t2v.generator.batches import collate


def clips_by_condition(data: TokenSequences, frames: int) -> dict[tuple[int, int, float], list[int]]:
    """Item indices of the clips of exactly `frames` latent frames, by (h, w, fps)."""
    groups: dict[tuple[int, int, float], list[int]] = defaultdict(list)
    for item, row in enumerate(data.rows):
        t, h, w = data.reader.rows[row]["shape"]
        if t == frames:
            groups[h, w, float(data.reader.fps(row))].append(item)
    return dict(sorted(groups.items()))


@torch.no_grad()
def condition_loss(model: VideoGenerator, data: TokenSequences, items: list[int], frame_ids: int,
                   batch: int = 16) -> dict[str, float]:
    """Mean cross-entropy (nats per code) over the items: all video codes, the first latent frame's, the others'."""
    start = model.vocab.prefix_len - 1  # logits from BOV on predict the video ids
    totals = {"all": [], "first_frame": [], "later_frames": []}
    for first in range(0, len(items), batch):
        sequences = collate([data[i] for i in items[first: first + batch]])
        sequences = {name: tensor.to(model.head.weight.device) for name, tensor in sequences.items()}
        logits = model(sequences["ids"], sequences["positions"], logits_from=start)  # (B, L - start, C)
        labels = sequences["labels"][:, start:]
        loss = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        video = labels != IGNORE  # EOV's label is ignored: the video codes only
        loss = loss[video].view(len(labels), -1)  # (B, t·h·w): the clips of a condition share a grid
        totals["all"].append(loss.mean())
        totals["first_frame"].append(loss[:, :frame_ids].mean())
        totals["later_frames"].append(loss[:, frame_ids:].mean())
    return {name: float(torch.stack(values).mean()) for name, values in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generator", type=Path, help="a generator run or save_pretrained directory")
    parser.add_argument("shards", type=Path, help="the token shards it was trained on")
    parser.add_argument("--split", default="heldout", help="split of the clips to score")
    parser.add_argument("--num", type=int, default=64, help="clips per size and rate")
    parser.add_argument("--window", type=int, default=5, help="latent frames of the clips that count")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/generator_loss.json"))
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = device_of(args)
    model = VideoGenerator.from_pretrained(args.generator).eval().to(device, dtype)
    data = TokenSequences(args.shards, TextTokenizer.load(args.generator), model.vocab, split=args.split)
    rows = []
    print(f"{'grid (h×w)':<11} {'fps':>4} {'clips':>6} {'all':>7} {'first frame':>12} {'later frames':>13}")
    for (h, w, fps), items in clips_by_condition(data, args.window).items():
        scores = condition_loss(model, data, items[: args.num], h * w)
        rows.append({"grid": [h, w], "fps": fps, "clips": len(items[: args.num]), **scores})
        print(f"{f'{h}×{w}':<11} {fps:>4g} {rows[-1]['clips']:>6} {scores['all']:>7.3f} "
              f"{scores['first_frame']:>12.3f} {scores['later_frames']:>13.3f}")
    write_report({"generator": str(args.generator), "shards": str(args.shards), "split": args.split,
                  "window": args.window, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
