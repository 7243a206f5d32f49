"""Benchmark: the shapes verifier's accuracy of one pipeline under several sampling settings. Prints a table and
writes JSON.

Every setting generates the same captions with the same seeds (`recipes/shapes/evaluate.py`), so the rows differ
only by how codes are drawn: guidance scale, temperature, top-k and top-p. A setting is `cfg,temperature,top_k,
top_p`; the default grid crosses guidance 1, 2 and 3 with temperature 0.7 and 1.0 at top-k 20 and without
truncation.

    python bench/shapes_sampling.py runs/shapes/pipeline --num 64
    python bench/shapes_sampling.py runs/shapes/pipeline --setting 2,1.0,0,1 --setting 3,1.0,0,1
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from report import add_device_arguments, device_of, write_report  # bench/ is the script's directory, on sys.path

from t2v.generator.pipeline import TextToVideo
from t2v.generator.sample import SamplingConfig
from t2v.recipes.evaluation import EvalConfig
from t2v.recipes.shapes.evaluate import evaluate_pipeline
from t2v.recipes.shipped import resolve_pipeline

DEFAULT_GRID = [SamplingConfig(temperature=temperature, top_k=top_k, cfg_scale=cfg)
                for cfg, temperature, top_k in itertools.product((1.0, 2.0, 3.0), (0.7, 1.0), (20, 0))]


def parse_setting(text: str) -> SamplingConfig:
    """'cfg,temperature,top_k,top_p' → a SamplingConfig (one-line error otherwise)."""
    try:
        cfg, temperature, top_k, top_p = text.split(",")
        return SamplingConfig(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                              cfg_scale=float(cfg))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a setting is cfg,temperature,top_k,top_p (e.g. 2,1.0,0,1): {error}")


def label(config: SamplingConfig) -> str:
    return f"cfg {config.cfg_scale:g}, T {config.temperature:g}, top-k {config.top_k}, top-p {config.top_p:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=str, help="a pipeline directory or the name of a shipped one "
                        "(`shapes`)")
    parser.add_argument("--num", type=int, default=64, help="videos per split and setting")
    parser.add_argument("--setting", type=parse_setting, action="append",
                        help="cfg,temperature,top_k,top_p (repeatable; default: a grid of 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/shapes_sampling.json"))
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    args.pipeline = resolve_pipeline(args.pipeline)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline = TextToVideo.from_pretrained(args.pipeline).to(*device_of(args))
    rows = []
    print(f"{'sampling':<42} {'seen':>6} {'heldout':>8} {'object':>7} {'color':>6} {'shape':>6} {'dir':>5} "
          f"{'speed':>6} {'s':>5}")
    for sampling in args.setting or DEFAULT_GRID:
        started = time.time()
        config = EvalConfig(num=args.num, seed=args.seed, sampling=sampling, frames=pipeline.info.frames)
        scores = evaluate_pipeline(pipeline, config)
        mean = {name: (scores["seen"][name] + scores["heldout"][name]) / 2
                for name in ("object", "color", "shape", "direction", "speed")}
        rows.append({"sampling": sampling.__dict__, "scores": scores, "seconds": round(time.time() - started, 1)})
        overall = f"{100 * scores['seen']['overall']:>5.1f}% {100 * scores['heldout']['overall']:>7.1f}%"
        attributes = " ".join(f"{100 * mean[name]:>5.1f}%" for name in ("object", "color", "shape", "direction",
                                                                          "speed"))
        print(f"{label(sampling):<42} {overall} {attributes} {rows[-1]['seconds']:>5.0f}", flush=True)
    print("(attribute columns: the mean of the two splits)")
    write_report({"pipeline": str(args.pipeline), "num": args.num, "seed": args.seed, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
