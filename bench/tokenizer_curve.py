"""Benchmark: how fast a shapes tokenizer config learns: held-out PSNR every few steps of reconstruction training
on freshly drawn shapes frames (or clips), with seconds per step. Prints a table and writes JSON.

A tool for ranking tokenizer configs in minutes before a whole recipe run: no files, no GAN, no checkpoints;
batches are drawn in memory (`recipes/shapes/dataset.draw_clips`, a new seed every step), the loss is the config's
pixel terms (`reconstruction_terms`: L1, L2, gradient difference, salience weighting) plus the quantizer's own,
the learning rate the config's with its warmup (constant after it). The config is the shapes recipe's tokenizer with
`--set` overrides, as `t2v tokenizer train` takes them.

    python bench/tokenizer_curve.py --steps 400
    python bench/tokenizer_curve.py --set model.spatial_stride=16 --set model.patch_size=4 --frames 17 --batch 4
    python bench/tokenizer_curve.py --steps 1500 --every 250 --no-quantizer
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from report import write_report  # bench/ is the script's directory, so on sys.path
from torch.utils.flop_counter import FlopCounterMode

from t2v.core.config_io import apply_overrides
from t2v.recipes.shapes import tokenizer_config
from t2v.recipes.shapes.dataset import draw_clips
from t2v.recipes.shapes.verify import check_video
from t2v.tokenizer.config import TokenizerTrainConfig
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.losses import reconstruction_terms, salience
from t2v.tokenizer.metrics import psnr
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.video_io import write_video


def drawn_batch(num: int, frames: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """(num, 3, frames, 64, 64) pixels and their captions: shapes clips of both splits drawn from `seed`; with
    `frames` = 1 one frame at a random time of each 17-frame clip (the image phase's batches)."""
    clips, captions = [], []
    for i, (row, clip) in enumerate(draw_clips(num=num, frames=max(frames, 17), seed=seed)):
        if frames == 1:
            clip = clip[np.random.default_rng([seed, i]).integers(len(clip))][None]
        clips.append(to_pixels(clip[:frames]))
        captions.append(row["caption"])
    return torch.cat(clips), captions


def colour_error(reconstruction: torch.Tensor, video: torch.Tensor) -> float:
    """Mean absolute chroma error (each pixel's error less its mean over RGB) on the object's pixels (salience >
    0.25): near 0.74 while the decoder paints every object in the palette's mean colour, near 0 once colours are
    right."""
    error = reconstruction - video
    chroma = (error - error.mean(dim=1, keepdim=True)).abs().mean(dim=1, keepdim=True)
    return float(chroma[salience(video) > 0.25].mean())


def first_frame_checks(reconstruction: torch.Tensor, captions: list[str]) -> list:
    """The verifier's check of each reconstruction's first frame against its caption, the frame shown twice (the
    verifier needs two)."""
    return [check_video(np.repeat(to_uint8(clip)[:1], 2, axis=0), caption)
            for clip, caption in zip(reconstruction, captions)]


def shape_accuracy(reconstruction: torch.Tensor, captions: list[str]) -> float:
    """Fraction of reconstructions whose first frame the verifier reads as the caption's shape (its template match,
    IoU ≥ 0.5)."""
    return float(np.mean([check.shape for check in first_frame_checks(reconstruction, captions)]))


def bypass_quantizer(model: VideoTokenizer) -> None:
    """An ablation: the decoder gets the encoder's continuous latent instead of its quantized one (the codes are
    still computed), which tells what the codes lose apart from what the decoder cannot render."""
    model.quantizer.register_forward_hook(lambda module, inputs, output: dataclasses.replace(output, latent=inputs[0]))


def learning_curve(config: TokenizerTrainConfig, steps: int, batch: int, frames: int, every: int,
                   test_clips: int = 64, picture: Path | None = None,
                   no_quantizer: bool = False) -> list[dict[str, float]]:
    """Train `config.model` from its seed for `steps` steps; rows of (step, loss, held-out PSNR, held-out colour
    error, held-out shape accuracy, seconds per step after the first, GFLOP of one step). With `picture`, a PNG of
    8 held-out first frames (top) and their last reconstructions (bottom); `no_quantizer`: `bypass_quantizer`."""
    torch.manual_seed(config.seed)
    model = VideoTokenizer(config.model)
    if no_quantizer:
        bypass_quantizer(model)
    optim = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, betas=config.optim.betas,
                              weight_decay=config.optim.weight_decay)
    test, captions = drawn_batch(test_clips, frames, seed=10**6)
    rows, started, counter = [], time.perf_counter(), FlopCounterMode(display=False)
    for step in range(1, steps + 1):
        video, _ = drawn_batch(batch, frames, seed=step)
        for group in optim.param_groups:
            group["lr"] = config.optim.lr * min(1.0, step / max(1, config.optim.warmup_steps))
        with counter if step == 1 else contextlib.nullcontext():  # the FLOPs of one step, counted once
            out = model(video)
            pixels, _ = reconstruction_terms(video, out.reconstruction, config.loss)
            loss = pixels + config.loss.quantizer_weight * out.aux_loss
            optim.zero_grad(set_to_none=True)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optim.step()
        if step == 1:
            started = time.perf_counter()  # the counted step is slower: seconds per step start after it
            print(f"one step: {counter.get_total_flops() / 1e9:.1f} GFLOP", flush=True)
        if step % every == 0 or step == steps:
            seconds = (time.perf_counter() - started) / max(1, step - 1)
            with torch.no_grad():
                model.eval()
                reconstruction = torch.cat([model(part).reconstruction for part in test.split(16)])
                model.train()
            score, colour = float(psnr(reconstruction, test).mean()), colour_error(reconstruction, test)
            shape = shape_accuracy(reconstruction, captions)
            rows.append({"step": step, "loss": loss.item(), "psnr": score, "colour_error": colour, "shape": shape,
                         "seconds_per_step": seconds, "gflop_per_step": counter.get_total_flops() / 1e9})
            print(f"{step:>6} {loss.item():>8.4f} {score:>8.2f} {colour:>8.3f} {shape:>6.2f} {seconds:>9.3f}",
                  flush=True)
    if picture is not None:
        first = lambda video: np.concatenate([to_uint8(clip)[0] for clip in video[:8]], axis=1)  # noqa: E731
        grid = np.concatenate([first(test), first(reconstruction)], axis=0)
        write_video(picture, grid[None], fps=1, overwrite=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the shapes tokenizer config (repeatable), e.g. model.spatial_stride=16")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16, help="frames (or clips) per step")
    parser.add_argument("--frames", type=int, default=1, help="1: single frames (the image phase); 1 + 4k: clips")
    parser.add_argument("--every", type=int, default=100, help="steps between held-out scores")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/tokenizer_curve.json"))
    parser.add_argument("--picture", type=Path, default=None, help="a PNG of held-out frames and reconstructions")
    parser.add_argument("--no-quantizer", action="store_true",
                        help="ablation: decode the encoder's continuous latent (as many numbers a cell as FSQ levels)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = apply_overrides(tokenizer_config(), args.overrides)
    print(f"{'step':>6} {'loss':>8} {'PSNR dB':>8} {'colour':>8} {'shape':>6} {'s/step':>9}")
    rows = learning_curve(config, args.steps, args.batch, args.frames, args.every, picture=args.picture,
                          no_quantizer=args.no_quantizer)
    write_report({"overrides": args.overrides, "batch": args.batch, "frames": args.frames,
                  "no_quantizer": args.no_quantizer, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
