"""`t2v data …`: make the shapes dataset and check an index before training (thin commands)."""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.options import SIZE


@click.group()
def data() -> None:
    """Make and check datasets."""


@data.command("shapes")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--num", type=click.IntRange(min=1), required=True, help="Number of clips to write.")
@click.option("--frames", type=click.IntRange(min=1), default=17, show_default=True, help="Frames per clip.")
@click.option("--size", type=SIZE, default="64", show_default=True, help="Frame size: N or WxH.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same dataset).")
@click.option("--split", type=click.Choice(["seen", "heldout", "all"]), default="all", show_default=True,
              help="Which captions to draw from (held-out compositions or the others).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True,
              help="Frame rate of the written mp4 files.")
def shapes(out_dir: Path, num: int, frames: int, size: tuple[int, int], seed: int, split: str, fps: float) -> None:
    """Write the synthetic `shapes` dataset: OUT_DIR/videos/*.mp4 and OUT_DIR/index.jsonl.

    \b
    Example:
      t2v data shapes data/shapes --num 2000 --frames 17 --size 64 --split seen
    """
    from t2v.recipes.shapes.dataset import make_dataset, split_counts
    from t2v.tokenizer.data import read_index

    click.echo(f"shapes: {num} clips of {frames} frames, {size[1]}x{size[0]} at {fps:g} fps, "
               f"split={split}, seed={seed} → {out_dir}")
    index = make_dataset(out_dir, num=num, frames=frames, size=size, seed=seed, split=split, fps=fps)
    counts = split_counts(read_index(index))
    click.echo(f"index: {index}")
    click.echo("clips per split: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))


@data.command("check")
@click.argument("index", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(min=1), default=17, show_default=True,
              help="Frames a clip needs (files shorter than this are reported).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Resample to this frame rate before counting (default: each file's own).")
def check(index: Path, frames: int, fps: float | None) -> None:
    """Decode every file of an index and report those training would skip (missing, unreadable, too short).

    \b
    Example:
      t2v data check data/shapes/index.jsonl --frames 17 --fps 8
    """
    from t2v.tokenizer.data import check_index

    click.echo(check_index(index, num_frames=frames, fps=fps).format())
