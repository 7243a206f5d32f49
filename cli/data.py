"""`t2v data …`: make the shapes or stills dataset, prepare a downloaded dataset's index, check an index, pack it
into tar shards (thin commands)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import click

from t2v.cli.options import SIZE, ProgressBar, quiet_option
from t2v.recipes.registry import RECIPES


@click.group()
def data() -> None:
    """Make and check datasets."""


def dataset_options(default_size: str, split_help: str) -> Callable:
    """OUT_DIR and the options of a command writing a recipe's clips (`t2v data shapes`, `t2v data stills`)."""
    options = [
        click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path)),
        click.option("--num", type=click.IntRange(min=1), required=True, help="Number of clips to write."),
        click.option("--frames", type=click.IntRange(min=1), default=17, show_default=True, help="Frames per clip."),
        click.option("--size", "sizes", type=SIZE, multiple=True, default=[default_size], show_default=True,
                     help="Frame size: N or WxH; repeatable (the clips take each size and rate in turn)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same dataset)."),
        click.option("--split", type=click.Choice(["seen", "heldout", "all"]), default="all", show_default=True,
                     help=split_help),
        click.option("--fps", "rates", type=click.FloatRange(min=0, min_open=True), multiple=True, default=[8.0],
                     show_default=True, help="Frame rate of the clips (the motion per second is the same at any "
                     "rate); repeatable."),
        click.option("--overwrite", is_flag=True, help="Replace OUT_DIR whole when it holds a dataset this command "
                     "wrote (any other non-empty folder is never replaced)."),
    ]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


@data.command("shapes")
@dataset_options(default_size="64", split_help="Which captions to draw from (held-out compositions or the "
                 "others).")
def shapes(out_dir: Path, num: int, frames: int, sizes: tuple[tuple[int, int], ...], seed: int, split: str,
           rates: tuple[float, ...], overwrite: bool) -> None:
    """Write the synthetic `shapes` dataset: OUT_DIR/videos/*.mp4 and OUT_DIR/index.jsonl.

    OUT_DIR must be new or empty (or, with --overwrite, a dataset this command wrote); sizes must be even and at
    least 16. The dataset is written beside OUT_DIR and renamed into place when complete: nothing partial is left.

    \b
    Examples:
      t2v data shapes data/shapes --num 2000 --frames 17 --size 64 --split seen
      t2v data shapes data/multi --num 2000 --size 64 --size 96x64 --fps 8 --fps 16
      t2v data shapes data/shapes --num 4000 --overwrite
    """
    write_clip_dataset("shapes", out_dir, num, frames, sizes, seed, split, rates, overwrite)


@data.command("stills")
@dataset_options(default_size="128", split_help="Which photographs to draw from (the held-out ones or the "
                 "others).")
def stills(out_dir: Path, num: int, frames: int, sizes: tuple[tuple[int, int], ...], seed: int, split: str,
           rates: tuple[float, ...], overwrite: bool) -> None:
    """Write the `stills` dataset (camera motion over the photographs scikit-image and scikit-learn ship):
    OUT_DIR/videos/*.mp4 and OUT_DIR/index.jsonl.

    OUT_DIR must be new or empty (or, with --overwrite, a dataset this command wrote); sizes must be even and at
    least 16. The dataset is written beside OUT_DIR and renamed into place when complete: nothing partial is left.

    \b
    Examples:
      t2v data stills data/stills --num 2000 --split seen
      t2v data stills data/stills-heldout --num 200 --split heldout --size 64 --fps 16
    """
    write_clip_dataset("stills", out_dir, num, frames, sizes, seed, split, rates, overwrite)


def write_clip_dataset(recipe: str, out_dir: Path, num: int, frames: int, sizes: tuple[tuple[int, int], ...],
                       seed: int, split: str, rates: tuple[float, ...], overwrite: bool) -> None:
    """`t2v data shapes` / `stills`: check the sizes and OUT_DIR, say what is written, write it through the
    recipe's `make_dataset`, report the clips per split."""
    import importlib

    from t2v.recipes.clip_folder import split_counts
    from t2v.tokenizer.data import read_index

    dataset = importlib.import_module(f"t2v.recipes.{recipe}.dataset")
    for size in sizes:  # checked before anything is printed or created (make_dataset checks again)
        dataset.check_size(size)
    dataset.check_dataset_dir(out_dir, overwrite)
    click.echo(f"{recipe}: {num} clips of {frames} frames, {', '.join(f'{w}x{h}' for h, w in sizes)} at "
               f"{', '.join(f'{r:g}' for r in rates)} fps, split={split}, seed={seed} → {out_dir}")
    index = dataset.make_dataset(out_dir, num=num, frames=frames, seed=seed, split=split, sizes=sizes, rates=rates,
                                 overwrite=overwrite)
    counts = split_counts(read_index(index))
    click.echo(f"index: {index}")
    click.echo("clips per split: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))


@data.command("check")
@click.argument("index", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(min=1), default=17, show_default=True,
              help="Frames a clip needs (files shorter than this are reported).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Resample to this frame rate before counting (default: each file's own).")
@click.option("--allow-skipped", is_flag=True, help="Exit 0 even when files would be skipped (default: exit 1).")
@quiet_option
def check(index: Path, frames: int, fps: float | None, allow_skipped: bool, quiet: bool) -> None:
    """Decode every file of an index and report those training would skip (missing, unreadable, too short).

    Exits 1 when any file would be skipped (after the report), unless --allow-skipped. A bar on stderr counts the
    files decoded (--quiet: none); the report goes to stdout.

    \b
    Examples:
      t2v data check data/shapes/index.jsonl --frames 17 --fps 8
      t2v data check data/mine/index.jsonl --frames 17 --allow-skipped
    """
    if not index.is_file():  # before torch is imported
        raise FileNotFoundError(f"index not found: {index}")
    from t2v.tokenizer.data import check_index, open_video_index

    with ProgressBar(len(open_video_index(index)), "check", "file", quiet) as progress:
        report = check_index(index, num_frames=frames, fps=fps, progress=progress)
    click.echo(report.format())
    if report.skipped and not allow_skipped:
        click.echo(f"Error: {len(report.skipped)} of {report.total} files would be skipped: fix or remove them, or "
                   "pass --allow-skipped", err=True)
        sys.exit(1)


@data.command("prepare")
@click.argument("name", type=click.Choice(RECIPES))
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("out_index", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", default=None,
              help="Keep one split (names per dataset, see its README; ucf101: 1|2|3|train1…test3, default 1).")
@click.option("--caption-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="folder only: a .csv/.jsonl with path,caption[,split] instead of sidecar .txt files.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Files probed at once (threads).")
def prepare(name: str, root: Path, out_index: Path, split: str | None, caption_file: Path | None,
            workers: int) -> None:
    """Turn dataset NAME, as downloaded to ROOT, into the index OUT_INDEX (jsonl: path, caption, split, fps,
    duration, size). NAME is the dataset's recipe: recipes/NAME/README.md says how to obtain the data and the
    layout ROOT must have. Missing, empty, unreadable and uncaptioned files are counted and skipped.

    \b
    Examples:
      t2v data prepare ucf101 data/ucf101 data/ucf101/index.jsonl --split 1
      t2v data prepare folder my_videos data/mine/index.jsonl --caption-file my_videos/captions.csv
    """
    from t2v.recipes.prepare import prepare as prepare_dataset

    click.echo(f"prepare {name}: {root} → {out_index}" + (f", split {split}" if split else "")
               + (f", captions from {caption_file}" if caption_file else ""))
    click.echo(prepare_dataset(name, root, out_index, split=split, workers=workers, caption_file=caption_file).format())


@data.command("pack")
@click.argument("index", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", default=None, help="Only rows of this split (default: every row).")
@click.option("--shard-mb", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Largest tar shard, in MB (a clip larger than that gets a shard of its own).")
def pack(index: Path, out_dir: Path, split: str | None, shard_mb: int) -> None:
    """Copy the video files of INDEX into tar shards in the new folder OUT_DIR (webdataset's layout: each clip's
    video and a json of caption, split, fps, size, …), with an index.jsonl that names each clip's tar member.

    Training reads OUT_DIR's shards instead of one file per clip: `--set data.shards=OUT_DIR` (or
    data.index=OUT_DIR/index.jsonl). Missing files and folders of frames are skipped and reported. OUT_DIR is
    written beside its final name and renamed into place when complete.

    \b
    Examples:
      t2v data pack data/shapes/index.jsonl data/shapes-packed
      t2v data pack data/webvid/index.jsonl data/webvid-packed --split train --shard-mb 2048
    """
    from t2v.tokenizer.packed import pack as pack_index

    if not index.is_file():
        raise FileNotFoundError(f"index not found: {index}")
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists: choose a new folder for the packed shards or remove it")
    click.echo(f"pack {index} → {out_dir}" + (f", split {split}" if split else "") + f", shards of ≤ {shard_mb} MB")
    report = pack_index(index, out_dir, split=split, max_shard_bytes=shard_mb * 1_000_000)
    for path, reason in list(report.skipped.items())[:20]:
        click.echo(f"  skipped {path}: {reason}")
    click.echo(report.summary())
