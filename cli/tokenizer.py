"""`t2v tokenizer …`: train, reconstruct, encode. Each command parses, prints what it will do, calls one function."""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.options import SIZE, TOKENIZER, device_options
from t2v.cli.runs import resolve_training, training_options


@click.group()
def tokenizer() -> None:
    """Train the video tokenizer, reconstruct videos with it, encode datasets to token shards."""


@tokenizer.command()
@click.argument("recipe")
@training_options
def train(recipe: str, out_dir: Path | None, overrides: tuple[str, ...], variant: str, resume_dir: Path | None,
          dry_run: bool) -> None:
    """Train a tokenizer from RECIPE (a recipe name such as `shapes`, or a .yaml/.json config file).

    \b
    Examples:
      t2v tokenizer train shapes                   # shapes clips drawn in memory: no dataset to make first
      t2v tokenizer train shapes --variant quick --set steps=100 --set image_steps=40 --set decoder_steps=20 \\
          --out runs/try
      t2v tokenizer train shapes --set model.quantizer.fsq_levels=[8,5,5,5] --dry-run
      t2v tokenizer train shapes --resume runs/shapes-tokenizer-00001
      torchrun --nproc_per_node=2 -m t2v.cli.main tokenizer train shapes --out runs/ddp
    """
    from t2v.recipes.registry import tokenizer_config
    from t2v.tokenizer.config import TokenizerTrainConfig

    def check(config: TokenizerTrainConfig) -> None:
        if config.data.drawn:
            from t2v.tokenizer.drawn import load_draw_function

            load_draw_function(config.data.drawn)
            return
        if not config.data.index:
            raise ValueError("no training index in the config: --set data.index=PATH (a jsonl of path, caption)")
        if not Path(config.data.index).is_file():
            raise FileNotFoundError(f"training index not found: {config.data.index} (for the shapes recipe make it "
                                    f"with `t2v data shapes {Path(config.data.index).parent} --num 2000`, or "
                                    f"--set data.index=PATH)")

    def estimate(config: TokenizerTrainConfig) -> str:
        from t2v.tokenizer import memory

        return memory.estimate(config).format()

    config, run_dir = resolve_training(TokenizerTrainConfig, tokenizer_config, "tokenizer", recipe, variant,
                                       overrides, out_dir, resume_dir, dry_run, check, estimate)
    if dry_run:
        return
    from t2v.tokenizer.train import train as run_training

    result = run_training(config, run_dir, resume=resume_dir is not None)
    if result is not None:
        click.echo(f"done: {result.summary()}\ntokenizer saved in {run_dir}")


@tokenizer.command()
@click.argument("tokenizer_dir", metavar="TOKENIZER", type=TOKENIZER)
@click.argument("in_video", type=click.Path(path_type=Path))
@click.argument("out_video", type=click.Path())
@click.option("--size", type=SIZE, help="Resize (short side) and center-crop to WxH first; default: the video's size.")
@click.option("--frames", type=click.IntRange(min=1), help="Only the first N frames.")
@click.option("--side-by-side", type=click.Path(),
              help="Also write original | reconstruction here (default: OUT_VIDEO's name + '_side_by_side').")
@click.option("--no-side-by-side", is_flag=True, help="Do not write the side-by-side video.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (files, and frame folders t2v wrote); a "
              "folder t2v did not write is never replaced.")
@device_options
def reconstruct(tokenizer_dir: Path, in_video: Path, out_video: str, size: tuple[int, int] | None,
                frames: int | None, side_by_side: str | None, no_side_by_side: bool, overwrite: bool, device: str,
                dtype: str) -> None:
    """Encode and decode IN_VIDEO with TOKENIZER (a trained tokenizer's directory, or the name of one the package
    ships: a shipped pipeline's name gives its video tokenizer); write OUT_VIDEO and print PSNR and SSIM.

    Any length: frames are streamed through the tokenizer in chunks, so memory does not grow with the video.
    The output format follows OUT_VIDEO's suffix (.mp4, .webm, .gif; .png/.jpg for a one-frame input; no suffix
    or a trailing / for a new folder of PNG frames). Both outputs are checked before the tokenizer loads: an
    existing one is refused unless --overwrite, and a folder t2v did not write is never replaced.

    \b
    Examples:
      t2v tokenizer reconstruct shapes clip.mp4 clip_rec.mp4 --size 64x64      # the shipped shapes tokenizer
      t2v tokenizer reconstruct runs/shapes-tokenizer-00001 clip.mp4 clip_rec.mp4 --size 64x64
      t2v tokenizer reconstruct runs/shapes-tokenizer-00001 clip.mp4 clip_rec.mp4 --overwrite
      t2v tokenizer reconstruct runs/shapes-tokenizer-00001 clip.mp4 rec_frames/ --no-side-by-side
      t2v tokenizer reconstruct runs/shapes-tokenizer-00001 clip.mp4 clip_rec.mp4 --device cpu --dtype bfloat16
    """
    from t2v.tokenizer.outputs import check_outputs, output_kind

    output_kind(out_video)  # a path with no name, an unknown suffix or `out.mp4/`: a one-line error
    if no_side_by_side:
        side_by_side = None
    elif side_by_side is None:
        path = Path(out_video)
        side_by_side = str(path.with_name(f"{path.stem}_side_by_side{path.suffix}"))
    if side_by_side is not None and Path(side_by_side).absolute() == Path(out_video).absolute():
        raise ValueError(f"--side-by-side {side_by_side} is OUT_VIDEO itself: give it another path")
    if not in_video.exists():
        raise FileNotFoundError(f"video not found: {in_video}")
    check_outputs([out_video, side_by_side], overwrite=overwrite)  # the paths alone, before torch is imported
    from t2v.core.precision import resolve
    from t2v.tokenizer.model import VideoTokenizer
    from t2v.tokenizer.reconstruct import reconstruct_file
    from t2v.tokenizer.video_io import probe

    where, precision = resolve(device, dtype)  # an unknown or missing device: a one-line error before any work
    known = [count for count in (probe(in_video).num_frames, frames) if count]  # bounds on the frames written
    check_outputs([out_video, side_by_side], overwrite=overwrite, frames=min(known, default=None))  # before loading
    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    result = reconstruct_file(model, in_video, out_video, size=size, max_frames=frames, side_by_side=side_by_side,
                              overwrite=overwrite, device=where, dtype=precision)
    click.echo(f"{result.frames} frames at {result.size[1]}x{result.size[0]}: PSNR {result.psnr:.2f} dB, "
               f"SSIM {result.ssim:.4f} ({result.seconds:.1f} s) → {result.output}"
               + (f", side by side → {result.side_by_side}" if result.side_by_side else ""))


@tokenizer.command()
@click.argument("tokenizer_dir", metavar="TOKENIZER", type=TOKENIZER)
@click.argument("index", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", "sizes", type=SIZE, multiple=True,
              help="Resize (short side) and center-crop to WxH; repeated: each clip to the size of nearest aspect "
                   "ratio (shards of several latent grids); default: the first video's size.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Resample to this frame rate first.")
@click.option("--frames", type=click.IntRange(min=1), help="At most N frames per clip.")
@click.option("--split", help="Only rows of this split (e.g. seen).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Processes decoding videos ahead of the tokenizer (0: in this process).")
@click.option("--resume", is_flag=True, help="Continue the unfinished encode of OUT_DIR (OUT_DIR.partial/, left by a "
              "killed or failed run) with the same inputs; with none there, start one.")
@device_options
def encode(tokenizer_dir: Path, index: Path, out_dir: Path, sizes: tuple[tuple[int, int], ...], fps: float | None,
           frames: int | None, split: str | None, workers: int, resume: bool, device: str, dtype: str) -> None:
    """Encode every clip of INDEX (jsonl of path, caption, …, or a packed directory) into token shards in OUT_DIR.

    OUT_DIR gets meta.json, index.jsonl (caption, fps and token offsets of each clip) and flat .bin shards: the
    generator's training input. Unreadable files are skipped and counted. Under torchrun each rank encodes every
    WORLD_SIZE-th clip into OUT_DIR.partial/parts/rank_K/ and rank 0 merges the parts into OUT_DIR; a killed run
    continues with --resume, encoding each clip once.

    \b
    Examples:
      t2v tokenizer encode runs/shapes-tokenizer-00001 data/shapes/index.jsonl data/shapes-tokens
      t2v tokenizer encode runs/shapes-multi/tokenizer data/multi/index.jsonl data/multi-tokens --size 64 --size 96x64
      torchrun --nproc_per_node=8 -m t2v.cli.main tokenizer encode runs/tok data/webvid/index.jsonl data/webvid-tokens
      t2v tokenizer encode runs/tok data/webvid/index.jsonl data/webvid-tokens --resume   # after a kill
    """
    import os

    if out_dir.exists():  # the paths first: before torch is imported
        raise FileExistsError(f"{out_dir} already exists: choose a new output directory or remove it")
    if not index.exists():
        raise FileNotFoundError(f"index not found: {index}")
    import torch

    from t2v.core.precision import resolve
    from t2v.tokenizer.encode import encode_dataset
    from t2v.tokenizer.data import open_video_index
    from t2v.tokenizer.model import VideoTokenizer
    from t2v.tokenizer.packed import clip_file
    from t2v.tokenizer.video_io import probe

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    where, precision = resolve(device, dtype)
    if where.type == "cuda" and where.index is None and world > 1:  # one GPU per rank
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    rows = open_video_index(index)
    if not len(rows):
        raise ValueError(f"{index} is empty")
    if not sizes:
        with clip_file(rows.row(0)) as path:
            info = probe(path)
        sizes = ((info.height, info.width),)
    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    if rank == 0:
        click.echo(f"encode {index} → {out_dir}: {len(rows.select(split))} clips at "
                   f"{', '.join(f'{w}x{h}' for h, w in sizes)}, {world} rank(s), {workers} decoding worker(s) each, "
                   f"{where} {str(precision).removeprefix('torch.')}" + (", resuming" if resume else ""))
    report = encode_dataset(model, index, out_dir, size=sizes[0], fps=fps, max_frames=frames, split=split,
                            buckets=sizes if len(sizes) > 1 else (), device=where, dtype=precision, workers=workers,
                            rank=rank, world=world, resume=resume)
    click.echo(report.summary() if rank == 0 else f"rank {rank}: {report.clips} clips encoded into {report.out_dir}")
