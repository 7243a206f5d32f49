"""Benchmark: the shapes recipe conditioned on a tiny frozen T5-style encoder against the caption tokenizer, at the
same budget: one `t2v recipe run shapes` makes the tokenizer, the token shards and the caption-tokenizer generator;
a second run starts from copies of that tokenizer and those shards and trains the same generator (same steps,
batch, data, seed) reading a random tiny T5 encoder's states (`generator/tiny_encoder.py`, its byte-level BPE
trained on the shards' captions) instead of caption ids. Both pipelines are scored by the shapes verifier on the
same captions and seeds. Prints a table and writes JSON.

    python bench/text_encoder.py                          # the full recipe, 256 videos per split (about 50 min)
    python bench/text_encoder.py --quick --num 64          # minutes: the quick recipe
    python bench/text_encoder.py --reuse runs/shapes       # both start from that run's tokenizer and shards
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from report import write_report  # bench/ is the script's directory, on sys.path

from t2v.generator.tiny_encoder import TinyEncoderConfig, save_tiny_encoder
from t2v.recipes.shapes.run import run_config, run_recipe
from t2v.tokenizer.shards import ShardReader

COLUMNS = ("object", "color", "shape", "direction", "speed", "overall", "overall_stderr")


def start_from(out: Path, source: Path) -> None:
    """`out` starts with copies of the recipe run `source`'s tokenizer and shards (and their stage timings), so
    its run trains the generator and evaluates only."""
    out.mkdir(parents=True, exist_ok=True)
    for entry in ("tokenizer", "tokens"):
        if not (out / entry).exists():
            shutil.copytree(source / entry, out / entry)
    if not (out / "run.json").exists():
        timings = json.loads((source / "run.json").read_text())
        (out / "run.json").write_text(json.dumps({stage: timings[stage] for stage in ("tokenizer", "encode")}))


def encoder_run(out: Path, baseline: Path, encoder: Path, quick: bool, num: int):
    """The run config reading `encoder`, with the baseline's tokenizer and shards (and their timings) copied in."""
    start_from(out, baseline)
    config = run_config(quick)
    model = dataclasses.replace(config.generator.model, text_encoder=str(encoder.resolve()))
    generator = dataclasses.replace(config.generator, model=model, name=f"{config.generator.name}-t5")
    return dataclasses.replace(config, generator=generator, eval=dataclasses.replace(config.eval, num=num))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/runs/text_encoder"), help="runs (resumed if there)")
    parser.add_argument("--quick", action="store_true", help="the recipe's quick run")
    parser.add_argument("--num", type=int, default=256, help="videos per split")
    parser.add_argument("--json", type=Path, default=Path("bench/results/text_encoder.json"))
    parser.add_argument("--reuse", type=Path, help="a finished `t2v recipe run shapes` (of the same --quick) whose "
                        "tokenizer and shards both runs start from: only the generators train")
    args = parser.parse_args(argv)
    baseline, t5_run, encoder = args.out / "caption", args.out / "t5", args.out / "tiny-t5"

    started = time.time()
    if args.reuse:
        start_from(baseline, args.reuse)
    config = run_config(args.quick)
    reports = {"caption tokenizer": run_recipe(baseline, dataclasses.replace(
        config, eval=dataclasses.replace(config.eval, num=args.num)), log=print)}
    if not (encoder / "config.json").is_file():
        save_tiny_encoder(encoder, [row["caption"] for row in ShardReader.open(baseline / "tokens").rows],
                          TinyEncoderConfig(kind="t5"))
    reports["tiny T5 (frozen)"] = run_recipe(t5_run, encoder_run(t5_run, baseline, encoder, args.quick, args.num),
                                             log=print)
    timings = {name: json.loads((run / "run.json").read_text()) for name, run in
               (("caption tokenizer", baseline), ("tiny T5 (frozen)", t5_run))}

    print(f"\n| conditioning | split | {' | '.join('±' if c.endswith('stderr') else c for c in COLUMNS)} | n | "
          "generator s |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 2))
    for name, report in reports.items():
        for split, scores in report.items():
            cells = " | ".join(f"{100 * scores[c]:.1f}" for c in COLUMNS)
            print(f"| {name} | {split} | {cells} | {scores['num']} | {timings[name]['generator']:.0f} |")
    write_report({"quick": args.quick, "reused": str(args.reuse) if args.reuse else None,
                  "videos_per_split": args.num, "encoder": dataclasses.asdict(TinyEncoderConfig()),
                  "scores": reports, "stage_seconds": timings, "wall_seconds": round(time.time() - started, 1)},
                 args.json)


if __name__ == "__main__":
    main()
