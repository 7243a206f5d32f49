"""Benchmark: a tokenizer's held-out reconstructions: any trained tokenizer on any folder of videos (or an index),
or the `shapes` recipe's tokenizer (64×64, 17 frames) trained here.

Reports held-out PSNR and SSIM, codebook usage and perplexity, encode and decode frames per second (and the training
wall time when it trains), and the PSNR of two reconstructions that learn nothing on the same clips, so a reader can
tell learning from averaging: each frame down-sampled by the tokenizer's spatial stride (area) and up-sampled again
(bilinear), and each frame's mean colour. Prints a table and writes JSON, plus a GIF of originals (left) and
reconstructions (right) for docs/RESULTS.md, and a PNG of its first, middle and last frames side by side.

    python bench/tokenizer.py --tokenizer runs/stills-tokenizer --videos data/stills-heldout --size 128 128
    python bench/tokenizer.py                      # train the shapes recipe's tokenizer, then measure it
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
from t2v.recipes.shipped import resolve_tokenizer
from t2v.tokenizer.evaluate import FolderClips, evaluate
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


def held_out(args: argparse.Namespace):
    """(tokenizer, held-out dataset, training config or None, training seconds or None): the tokenizer of
    `--tokenizer` and the clips of `--videos`, or the shapes recipe's tokenizer trained here and its held-out clips."""
    if args.tokenizer:
        model = VideoTokenizer.from_pretrained(resolve_tokenizer(args.tokenizer))
        size = tuple(args.size or (64, 64))
        videos = Path(args.videos)
        if videos.is_dir() and (videos / "index.jsonl").is_file():  # a dataset folder (`t2v data …`) reads its index
            videos = videos / "index.jsonl"
        if videos.is_dir():
            return model, FolderClips(videos, size, args.frames), None, None
        dataset = ClipDataset(videos, num_frames=args.frames, size=size, crop="center", split=args.split, seed=1)
        return model, dataset, None, None
    data_dir, run_dir = Path(args.data), Path(args.run)
    if not (data_dir / "index.jsonl").is_file():
        make_dataset(data_dir, num=args.num, frames=17, size=(64, 64), seed=0, split="all")
    config = tokenizer_config()
    config = config_io.apply_overrides(config, [f"data.index={data_dir / 'index.jsonl'}", *args.overrides])
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    started = time.time()
    train(config, run_dir)
    wall = time.time() - started
    data = config.data
    dataset = ClipDataset(data.index, num_frames=data.num_frames, size=tuple(data.size), crop="center",
                          split=data.eval_split, seed=1)
    return VideoTokenizer.from_pretrained(run_dir), dataset, config, wall


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", help="a trained tokenizer (run or save_pretrained directory, or a shipped "
                        "name: stills): evaluate it on --videos instead of training the shapes recipe's")
    parser.add_argument("--videos", help="with --tokenizer: a folder of video files, an index.jsonl or a dataset "
                        "folder holding one")
    parser.add_argument("--split", help="with an index: only the rows of this split (e.g. heldout)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="clip size (default 64 64)")
    parser.add_argument("--frames", type=int, default=17, help="frames per clip (1 + 4k for temporal stride 4)")
    parser.add_argument("--data", default="bench/data/shapes", help="shapes dataset dir (made if missing)")
    parser.add_argument("--num", type=int, default=2000, help="clips to generate if the dataset is missing")
    parser.add_argument("--run", default="bench/runs/tokenizer", help="run directory (replaced)")
    parser.add_argument("--out", default="bench/results", help="where the JSON and the GIF go")
    parser.add_argument("--name", default="tokenizer", help="file names: NAME.json, NAME_reconstructions.gif/.png")
    parser.add_argument("--eval-clips", type=int, default=256, help="held-out clips for the final metrics")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    if bool(args.tokenizer) != bool(args.videos):
        parser.error("--tokenizer and --videos go together: a tokenizer and the videos to reconstruct")
    device, dtype = device_of(args)  # evaluation and coding speed (training takes the config's precision)
    out_dir = Path(args.out)

    # 1. The tokenizer (trained here, timed, or given) and the held-out clips.
    model, dataset, config, wall = held_out(args)
    model = model.to(device, dtype)

    # 2. Held-out metrics, beside the two reference reconstructions, and the coding speed.
    result = evaluate(model, dataset, args.eval_clips, device)
    dataset.set_epoch(0)
    clips = torch.stack([dataset[i]["video"] for i in range(min(8, len(dataset)))])
    encode_fps, decode_fps = coding_speed(model, clips)

    # 3. Picture: up to 4 held-out clips, original | reconstruction.
    with torch.no_grad():
        reconstruction = model.decode(model.encode(clips[:4].to(device))).cpu()
    rows = [np.concatenate([to_uint8(clips[i]), to_uint8(reconstruction[i])], axis=2) for i in rows_of(clips)]
    out_dir.mkdir(parents=True, exist_ok=True)
    gif = out_dir / f"{args.name}_reconstructions.gif"
    write_video(gif, np.concatenate(rows, axis=1), fps=8, overwrite=True)
    png = out_dir / f"{args.name}_reconstructions.png"  # the first, middle and last frames, side by side
    frames = np.concatenate(rows, axis=1)
    write_video(png, np.concatenate(list(frames[[0, len(frames) // 2, -1]]), axis=1)[None], fps=8, overwrite=True)

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or 'cpu'}",
        "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        "tokenizer": args.tokenizer or args.run, "videos": args.videos or args.data,
        "clip": [int(clips.shape[2]), *map(int, clips.shape[3:])],
        "steps": config.steps if config else None, "batch_size": config.batch_size if config else None,
        "train_wall_seconds": round(wall, 1) if wall is not None else None,
        "heldout_psnr_db": round(result.psnr, 2), "heldout_ssim": round(result.ssim, 4),
        "psnr_downsampled_db": round(result.psnr_downsampled, 2),
        "psnr_mean_colour_db": round(result.psnr_mean_colour, 2),
        "codebook_size": model.codebook_size, "codebook_usage": round(result.codebook_usage, 4),
        "perplexity": round(result.perplexity, 1), "eval_clips": result.clips,
        "encode_fps": round(encode_fps, 1), "decode_fps": round(decode_fps, 1),
    }
    (out_dir / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    print("\n| metric | value |\n|---|---|")
    for key, value in report.items():
        print(f"| {key} | {value} |")
    print(f"\nJSON: {out_dir / (args.name + '.json')}; pictures: {gif}, {png}")
    return report


def rows_of(clips: torch.Tensor) -> range:
    """The clips shown in the picture: up to 4."""
    return range(min(4, len(clips)))


if __name__ == "__main__":
    main()
