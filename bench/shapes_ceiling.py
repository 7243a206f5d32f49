"""Benchmark: the shapes verifier on a tokenizer's reconstructions of true clips, per split.

A generator can only be as right as the videos its codes decode to, so this is the ceiling of `t2v eval shapes`
for a pipeline built on this tokenizer. Prints a table and writes JSON.

    python bench/shapes_ceiling.py runs/shapes/tokenizer --num 128
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from t2v.recipes.shapes.evaluate import evaluate_reconstructions
from t2v.recipes.shapes.verify import format_table
from t2v.tokenizer.model import VideoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer", type=Path, help="a tokenizer run or save_pretrained directory")
    parser.add_argument("--num", type=int, default=128, help="clips per split")
    parser.add_argument("--out", type=Path, default=Path("bench/results/shapes_ceiling.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = VideoTokenizer.from_pretrained(args.tokenizer).eval()
    with tempfile.TemporaryDirectory() as work:
        reports = evaluate_reconstructions(model, args.num, work)
    print(format_table(reports))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"tokenizer": str(args.tokenizer), "num": args.num, "scores": reports}, indent=2))
    print(f"JSON → {args.out}")


if __name__ == "__main__":
    main()
