"""Benchmark: train the `shapes` recipe's tokenizer (64×64, 17 frames) and measure what it achieved.

Reports held-out PSNR, SSIM, codebook usage and perplexity (clips of held-out captions, never trained on),
encode and decode frames per second, and the training wall time; prints a table and writes JSON, plus a GIF of
originals (left) and reconstructions (right) for docs/RESULTS.md.

    python bench/tokenizer.py                      # the recipe as it is
    python bench/tokenizer.py --set steps=200      # any override of the recipe
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from t2v.core import config_io
from t2v.recipes.shapes import tokenizer_config
from t2v.recipes.shapes.dataset import make_dataset
from t2v.tokenizer.data import ClipDataset
from t2v.tokenizer.evaluate import evaluate
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import to_uint8
from t2v.tokenizer.train import train
from t2v.tokenizer.video_io import write_video
from report import add_device_arguments, device_of, synchronize  # bench/ is the script's directory, so on sys.path


def coding_speed(model: VideoTokenizer, clips: torch.Tensor, repeats: int = 3) -> tuple[float, float]:
    """Encode and decode frames per second on `clips` (B, 3, T, H, W), best of `repeats`."""
    model.eval()
    frames = clips.shape[0] * clips.shape[2]
    clips = clips.to(model.device)
    encode_times, decode_times = [], []
    with torch.no_grad():
        codes = model.encode(clips)  # warm-up
        model.decode(codes)
        for _ in range(repeats):
            synchronize(model.device)
            start = time.perf_counter()
            codes = model.encode(clips)
            synchronize(model.device)
            encode_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.decode(codes)
            synchronize(model.device)
            decode_times.append(time.perf_counter() - start)
    return frames / min(encode_times), frames / min(decode_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="bench/data/shapes", help="shapes dataset dir (made if missing)")
    parser.add_argument("--num", type=int, default=2000, help="clips to generate if the dataset is missing")
    parser.add_argument("--run", default="bench/runs/tokenizer", help="run directory (replaced)")
    parser.add_argument("--out", default="bench/results", help="where the JSON and the GIF go")
    parser.add_argument("--eval-clips", type=int, default=256, help="held-out clips for the final metrics")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_device_arguments(parser)
    args = parser.parse_args()
    device, dtype = device_of(args)  # evaluation and coding speed (training takes the config's precision)

    data_dir, run_dir, out_dir = Path(args.data), Path(args.run), Path(args.out)
    if not (data_dir / "index.jsonl").is_file():
        make_dataset(data_dir, num=args.num, frames=17, size=(64, 64), seed=0, split="all")
    config = tokenizer_config()
    config = config_io.apply_overrides(config, [f"data.index={data_dir / 'index.jsonl'}", *args.overrides])
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)

    # 1. Train, timed.
    started = time.time()
    train(config, run_dir)
    wall = time.time() - started

    # 2. Final held-out metrics on more clips than the periodic evaluation used.
    model = VideoTokenizer.from_pretrained(run_dir).to(device, dtype)
    data = config.data
    held_out = ClipDataset(data.index, num_frames=data.num_frames, size=tuple(data.size), crop="center",
                           split=data.eval_split, seed=1)
    result = evaluate(model, held_out, args.eval_clips, device)
    held_out.set_epoch(0)
    clips = torch.stack([held_out[i]["video"] for i in range(8)])
    encode_fps, decode_fps = coding_speed(model, clips)

    # 3. Picture: 4 held-out clips, original | reconstruction.
    with torch.no_grad():
        reconstruction = model.decode(model.encode(clips[:4])).cpu()
    rows = [np.concatenate([to_uint8(clips[i]), to_uint8(reconstruction[i])], axis=2) for i in range(4)]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_video(out_dir / "tokenizer_reconstructions.gif", np.concatenate(rows, axis=1), fps=8, overwrite=True)

    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}",
        "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        "steps": config.steps, "batch_size": config.batch_size, "train_wall_seconds": round(wall, 1),
        "heldout_psnr_db": round(result.psnr, 2), "heldout_ssim": round(result.ssim, 4),
        "codebook_size": model.codebook_size, "codebook_usage": round(result.codebook_usage, 4),
        "perplexity": round(result.perplexity, 1), "eval_clips": result.clips,
        "encode_fps": round(encode_fps, 1), "decode_fps": round(decode_fps, 1),
        "targets": {"psnr_db": 32.0, "codebook_usage": 0.5, "train_minutes": 20},
    }
    (out_dir / "tokenizer.json").write_text(json.dumps(report, indent=2))
    print("\n| metric | value |\n|---|---|")
    for key, value in report.items():
        if key != "targets":
            print(f"| {key} | {value} |")
    print(f"\nJSON: {out_dir / 'tokenizer.json'}; picture: {out_dir / 'tokenizer_reconstructions.gif'}")


if __name__ == "__main__":
    main()
