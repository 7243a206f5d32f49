"""`t2v generate` and `t2v extend`: prompts (or a prompt schedule) → video files of any length, streamed.

Both ask for a frame size and rate the generator was trained on (`--size`, `--fps`; an untrained one is a one-line
error listing the trained ones, `--force` conditions on the nearest trained one instead and says so).
Every output path (each video, each preview) is checked before a model is loaded (tokenizer/outputs.py's rule):
an existing output is refused unless `--overwrite`, a folder t2v did not write is never replaced.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import click
import numpy as np

from t2v.cli.options import SIZE, sampling_config, sampling_options


def output_paths(out: str | Path, num_prompts: int, num_samples: int) -> list[list[Path]]:
    """One path per (prompt, sample): OUT itself for a single video, else OUT's name + _pNNN / _sN."""
    from t2v.tokenizer.outputs import output_kind

    output_kind(out)  # a path with no name, an unknown suffix or `out.mp4/`: a one-line error
    out = Path(out)

    def name(prompt: int, sample: int) -> Path:
        tags = (f"_p{prompt:03d}" if num_prompts > 1 else "") + (f"_s{sample}" if num_samples > 1 else "")
        return out.with_name(f"{out.stem}{tags}{out.suffix}")
    return [[name(p, s) for s in range(num_samples)] for p in range(num_prompts)]


def check_outputs(paths: Sequence[Sequence[Path]], preview: bool, overwrite: bool, frames: int | None) -> None:
    """Check every video path and preview path of a command before any work (see tokenizer/outputs.py)."""
    from t2v.tokenizer.outputs import check_outputs as check

    videos = [path for group in paths for path in group]
    check(videos, overwrite=overwrite, frames=frames)
    check([preview_path(group[0], preview) for group in paths], overwrite=overwrite)


def shorten(text: str, width: int = 80) -> str:
    """`text` on one line, cut to `width` characters with '…' (a long prompt is not echoed whole)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def describe_prompt(prompt: str | list) -> str:
    """A prompt or schedule as a short quoted line for the console."""
    if isinstance(prompt, str):
        return repr(shorten(prompt))
    changes = ", ".join(f"{change.at}:{shorten(change.prompt, 40)!r}" for change in prompt)
    return shorten(changes, 120)


def read_prompts(prompt: str | None, prompts_file: Path | None) -> list[str]:
    prompts = [prompt] if prompt is not None else []
    if prompts_file is not None:
        prompts += [line.strip() for line in prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        raise click.UsageError("give a PROMPT, --prompt \"[FRAME:]TEXT\" …, --storyboard FILE or --prompts-file FILE")
    return prompts


def prompt_schedule(prompt_options: tuple[str, ...], storyboard: Path | None) -> list | None:
    """The `PromptChange` schedule of repeated --prompt "[FRAME:]TEXT" options or a storyboard file (None if neither)."""
    from t2v.generator.prompts import load_storyboard, parse_prompt

    if prompt_options and storyboard:
        raise click.UsageError("give --prompt options or --storyboard, not both")
    if storyboard:
        return load_storyboard(storyboard)
    return [parse_prompt(text) for text in prompt_options] or None


def resolve_frames(frames: int | None, seconds: float | None, fps: float | None, default: int | None) -> int | None:
    """The frame count of --frames or --seconds at `fps`, else `default` (None while fps or default is unknown)."""
    if frames is not None and seconds is not None:
        raise click.UsageError("give --frames or --seconds, not both")
    if seconds is not None:
        return max(1, round(seconds * fps)) if fps is not None else None
    return frames or default


def stream_to_files(chunks: Iterable[np.ndarray], paths: list[Path], fps: float, total: int, preview: Path | None,
                    before: Iterable[np.ndarray] = (), overwrite: bool = False) -> None:
    """Write each video of uint8 chunks (B, T_i, H, W, 3) to its path as the chunks come (the `before` frames
    (T, H, W, 3) first, in every file), keeping only the frames a `preview` contact sheet shows; existing outputs
    are replaced only with `overwrite`."""
    from t2v.tokenizer.video_io import VideoWriter, contact_sheet, frame_picks, write_image

    picks, kept, seen = set(frame_picks(total).tolist()), [], 0
    with ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(path, fps, overwrite=overwrite)) for path in paths]
        for frames in before:
            for writer in writers:
                writer.write(frames)
        for chunk in chunks:
            for writer, video in zip(writers, chunk):
                writer.write(video)
            kept += [chunk[:, i] for i in range(chunk.shape[1]) if seen + i in picks]
            seen += chunk.shape[1]
    for path in paths:
        click.echo(f"→ {path}")
    if preview is not None and kept:
        write_image(preview, contact_sheet(np.stack(kept, axis=1), max_columns=len(kept)), overwrite=overwrite)
        click.echo(f"preview → {preview}")


@contextlib.contextmanager
def echo_warnings() -> Iterator[None]:
    """Show the library's warnings of the block (e.g. a forced size) as `Warning: …` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)


def output_options(command):
    """Options shared by generate and extend: output, length, rate, sampling, seed, samples, preview."""
    options = [
        click.option("-o", "--out", "out", required=True, type=click.Path(),
                     help="Output: .mp4, .webm or .gif; .png or .jpg for one frame; a path without suffix (or "
                     "ending in /) for a new folder of PNG frames."),
        click.option("--overwrite", is_flag=True, help="Replace existing outputs (files, and frame folders t2v "
                     "wrote); a folder t2v did not write is never replaced."),
        click.option("--frames", type=click.IntRange(min=1), help="Number of frames, any (default: the pipeline's "
                     "clip length)."),
        click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Length in seconds (instead of "
                     "--frames)."),
        click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate: the generator is "
                     "conditioned on it and the file plays at it; a trained one (default: the pipeline's)."),
        click.option("--force", is_flag=True, help="Allow a size or rate the generator was not trained on: it is "
                     "conditioned on the nearest trained one (a warning says which)."),
        click.option("--prompt", "prompt_options", multiple=True, metavar="[FRAME:]TEXT",
                     help="A prompt from a frame on, repeatable: --prompt \"a red circle moving left slowly\" "
                     "--prompt \"64:a red circle moving up slowly\"."),
        click.option("--storyboard", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="YAML or JSON list of {at: FRAME, prompt: TEXT} (instead of --prompt)."),
        click.option("--window", type=click.IntRange(min=2), help="Latent frames the sampler keeps for long videos "
                     "(default: the pipeline's)."),
        sampling_options,
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed: a seed gives the same "
                     "video."),
        click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Videos per prompt (files OUT_s0, OUT_s1, …)."),
        click.option("--preview", is_flag=True, help="Also write a contact-sheet PNG of the frames beside each "
                     "output."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def preview_path(path: Path, preview: bool) -> Path | None:
    return path.with_name(f"{path.stem}.preview.png") if preview else None


@click.command()
@click.argument("pipeline_dir", type=click.Path(path_type=Path))
@click.argument("prompt", required=False)
@output_options
@click.option("--size", type=SIZE, help="Frame size WxH, a trained one (default: the pipeline's).")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="More prompts, one per line (files OUT_p000, OUT_p001, …).")
def generate(pipeline_dir: Path, prompt: str | None, out: str, overwrite: bool, frames: int | None,
             seconds: float | None, fps: float | None, force: bool, prompt_options: tuple[str, ...],
             storyboard: Path | None, window: int | None, cfg_scale: float | None, temperature: float | None,
             top_k: int | None, top_p: float | None, seed: int, num_samples: int, preview: bool,
             size: tuple[int, int] | None, prompts_file: Path | None) -> None:
    """Generate videos of any length for PROMPT with the pipeline in PIPELINE_DIR (made by `t2v recipe run`).

    Frames stream to the file as they are decoded; memory does not grow with --frames. Every output is checked
    first: an existing one is refused unless --overwrite, and a folder t2v did not write is never replaced.

    \b
    Examples:
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4 --overwrite
      t2v generate runs/shapes/pipeline "a blue diamond moving up quickly" -o diamond.gif --num-samples 4 --preview
      t2v generate runs/shapes/pipeline "a green square moving down slowly" -o still.png --frames 1
      t2v generate runs/shapes/pipeline "a green square moving down slowly" -o frames/ --frames 33
      t2v generate runs/shapes/pipeline --prompts-file prompts.txt -o out/video.mp4 --cfg 4 --top-k 100
      t2v generate runs/shapes-multi/pipeline "a red circle moving left slowly" -o wide.mp4 --size 96x64 --fps 16
      t2v generate runs/shapes/pipeline -o long.mp4 --frames 1025 \\
          --prompt "a red circle moving left slowly" --prompt "64:a red circle moving up slowly"
    """
    from t2v.generator.pipeline import TextToVideo

    schedule = prompt_schedule(prompt_options, storyboard)
    if schedule and (prompt or prompts_file):
        raise click.UsageError("give PROMPT/--prompts-file or a schedule (--prompt/--storyboard), not both")
    prompts = [schedule] if schedule else read_prompts(prompt, prompts_file)
    sampling = sampling_config(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
    outputs = output_paths(out, len(prompts), num_samples)
    check_outputs(outputs, preview, overwrite, resolve_frames(frames, seconds, fps, None))  # before the model loads
    pipeline = TextToVideo.from_pretrained(pipeline_dir)
    fps, size = fps or pipeline.info.fps, size or tuple(pipeline.info.size)
    frames = resolve_frames(frames, seconds, fps, pipeline.info.frames)
    check_outputs(outputs, preview, overwrite, frames)  # the default length is known now: before any sampling
    for paths, text in zip(outputs, prompts):
        click.echo(f"{describe_prompt(text)}: {frames} frame{'s' * (frames != 1)} of {size[1]}x{size[0]} at "
                   f"{fps:g} fps")
        with echo_warnings():
            chunks = pipeline.generate(text, frames, size, sampling, seed, window, num_samples, fps=fps, force=force)
        stream_to_files(chunks, paths, fps, frames, preview_path(paths[0], preview), overwrite=overwrite)


@click.command()
@click.argument("pipeline_dir", type=click.Path(path_type=Path))
@click.argument("in_video", type=click.Path(path_type=Path))
@output_options
@click.option("--size", type=SIZE, help="Resize and crop IN_VIDEO to WxH, a trained size (default: its own).")
@click.option("--context-frames", type=click.IntRange(min=1), help="Last frames of IN_VIDEO the model sees "
              "(default: its window less one latent frame).")
@click.option("--only-new", is_flag=True, help="Write only the continuation, not IN_VIDEO before it.")
def extend(pipeline_dir: Path, in_video: Path, out: str, overwrite: bool, frames: int | None,
           seconds: float | None, fps: float | None, force: bool, prompt_options: tuple[str, ...],
           storyboard: Path | None, window: int | None, cfg_scale: float | None, temperature: float | None,
           top_k: int | None, top_p: float | None, seed: int, num_samples: int, preview: bool,
           size: tuple[int, int] | None, context_frames: int | None, only_new: bool) -> None:
    """Continue IN_VIDEO with the pipeline in PIPELINE_DIR: its last frames are the context, the output holds it
    followed by the continuation, at IN_VIDEO's size and frame rate (or --size / --fps: it is resized and
    resampled first); those must be ones the generator was trained on (or --force). An existing output is refused
    unless --overwrite; a folder t2v did not write is never replaced.

    \b
    Examples:
      t2v extend runs/shapes/pipeline clip.mp4 -o longer.mp4 --frames 64
      t2v extend runs/shapes/pipeline clip.mp4 -o next.mp4 --prompt "a red circle moving up slowly" --only-new
      t2v extend runs/shapes/pipeline big_clip.mp4 -o longer.mp4 --size 64x64 --fps 8
      t2v extend runs/shapes/pipeline clip.mp4 -o longer.mp4 --frames 64 --overwrite
    """
    from t2v.generator.pipeline import TextToVideo
    from t2v.tokenizer.outputs import IMAGE, output_kind
    from t2v.tokenizer.video_io import iter_video, probe, resize_and_crop

    schedule = prompt_schedule(prompt_options, storyboard)
    sampling = sampling_config(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
    paths = output_paths(out, 1, num_samples)[0]
    if output_kind(out) == IMAGE and not only_new:
        raise ValueError(f"cannot write {out}: a {Path(out).suffix} file holds one image but the output holds "
                         f"{in_video} and its continuation; use a folder path (no suffix), a video suffix (.mp4, "
                         ".webm, .gif), or --only-new --frames 1")
    info = probe(in_video)
    rate, size = fps or info.fps, size or (info.height, info.width)
    check_outputs([paths], preview, overwrite, resolve_frames(frames, seconds, rate, None))  # before the model loads
    pipeline = TextToVideo.from_pretrained(pipeline_dir)
    with echo_warnings():
        pipeline.condition_for(size, rate, force)  # before any file is written
    frames = resolve_frames(frames, seconds, rate, pipeline.info.frames)
    check_outputs([paths], preview, overwrite, frames)
    # 1. Stream the input (at the asked rate and size) into the output, keeping only its last frames.
    # 2. Then encode those as the context and stream the continuation after it: memory stays bounded.
    tail: deque[np.ndarray] = deque(maxlen=context_frames or pipeline.video_tokenizer.num_frames(pipeline.window - 1))

    def original() -> Iterator[np.ndarray]:
        for chunk in iter_video(in_video, fps=fps):  # fps None: the file's own frames
            chunk = resize_and_crop(chunk, size)
            tail.extend(chunk)
            if not only_new:
                yield chunk

    def continuation() -> Iterator[np.ndarray]:
        click.echo(f"continuing {in_video} with {frames} frames of {size[1]}x{size[0]} at {rate:g} fps from its "
                   f"last {len(tail)}")
        with warnings.catch_warnings():  # a forced size or rate was reported above
            warnings.simplefilter("ignore")
            chunks = pipeline.extend(np.stack(tail) if tail else np.zeros((0, 1, 1, 3), np.uint8), schedule, frames,
                                     len(tail), sampling, seed, window, num_samples, fps=rate, force=force)
        yield from chunks

    stream_to_files(continuation(), paths, rate, frames, preview_path(paths[0], preview), before=original(),
                    overwrite=overwrite)
