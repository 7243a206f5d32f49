"""`t2v generate` and `t2v extend`: prompts (or a prompt schedule) → video files of any length, streamed.

Each command parses its options into one `GenerationOptions`, prints the resolved settings, and calls one library
function per output group: `TextToVideo.generate_files` (per prompt) or `TextToVideo.extend_file`, which stream
the videos (and the input video, for extend) to the files; this module only names and checks the paths.
Both ask for a frame size and rate the generator was trained on (`--size`, `--fps`; an untrained one is a one-line
error listing the trained ones, `--force` conditions on the nearest trained one instead and says so).
Every output path (each video, each preview) is checked before a model is loaded (tokenizer/outputs.py's rule):
an existing output is refused unless `--overwrite`, a folder t2v did not write is never replaced. Those checks,
the prompts and the pipeline directory come before torch and the models are imported (seconds), so a mistake is
answered at once. A tqdm bar on stderr counts the frames written (`--quiet`: none).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import click

from t2v.cli.options import (PIPELINE, SIZE, ProgressBar, check_pipeline, device_options, load_pipeline,
                             quiet_option, sampling_config, sampling_options)


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
    """The `PromptChange` schedule of repeated --prompt "[FRAME:]TEXT" options or a storyboard file (None if
    neither)."""
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


def echo_written(written) -> None:
    """Name the files a library call wrote (`WrittenFiles`): each video, then the preview."""
    for path in written.videos:
        click.echo(f"→ {path}")
    if written.preview is not None:
        click.echo(f"preview → {written.preview}")


@contextlib.contextmanager
def echo_warnings() -> Iterator[None]:
    """Show the library's warnings of the block (e.g. a forced size) as `Warning: …` lines on stderr as they come."""
    with warnings.catch_warnings():  # restores the filters and `showwarning` after the block
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: click.echo(f"Warning: {message}", err=True)
        yield


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
        device_options,
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed: a seed gives the same "
                     "video (on one device and dtype)."),
        click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Videos per prompt (files OUT_s0, OUT_s1, …)."),
        click.option("--preview", is_flag=True, help="Also write a contact-sheet PNG of the frames beside each "
                     "output."),
        quiet_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def preview_path(path: Path, preview: bool) -> Path | None:
    return path.with_name(f"{path.stem}.preview.png") if preview else None


@click.command()
@click.argument("pipeline_dir", metavar="PIPELINE", type=PIPELINE)
@click.argument("prompt", required=False)
@output_options
@click.option("--size", type=SIZE, help="Frame size WxH, a trained one (default: the pipeline's).")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="More prompts, one per line (files OUT_p000, OUT_p001, …).")
def generate(pipeline_dir: Path, prompt: str | None, out: str, overwrite: bool, frames: int | None,
             seconds: float | None, fps: float | None, force: bool, prompt_options: tuple[str, ...],
             storyboard: Path | None, window: int | None, cfg_scale: float | None, temperature: float | None,
             top_k: int | None, top_p: float | None, steps: int | None, device: str, dtype: str, seed: int,
             num_samples: int, preview: bool, quiet: bool, size: tuple[int, int] | None,
             prompts_file: Path | None) -> None:
    """Generate videos of any length for PROMPT with PIPELINE: a pipeline directory (made by `t2v recipe run`) or
    the name of one the package ships (`shapes`: no training needed); an existing directory wins.

    Frames stream to the file as they are decoded; memory does not grow with --frames. Every output is checked
    first: an existing one is refused unless --overwrite, and a folder t2v did not write is never replaced.

    \b
    Examples:
      t2v generate shapes "a red circle moving left slowly" -o red_circle.mp4      # the shipped pipeline
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4 --overwrite
      t2v generate runs/shapes/pipeline "a blue diamond moving up quickly" -o diamond.gif --num-samples 4 --preview
      t2v generate runs/shapes/pipeline "a green square moving down slowly" -o still.png --frames 1
      t2v generate runs/shapes/pipeline "a green square moving down slowly" -o frames/ --frames 33
      t2v generate runs/shapes/pipeline --prompts-file prompts.txt -o out/video.mp4 --cfg 4 --top-k 100
      t2v generate runs/shapes-multi/pipeline "a red circle moving left slowly" -o wide.mp4 --size 96x64 --fps 16
      t2v generate runs/shapes-masked/pipeline "a red circle moving left slowly" -o fast.mp4 --steps 1
      t2v generate shapes "a red circle moving left slowly" -o red_circle.mp4 --device cuda --dtype bfloat16
      t2v generate runs/shapes/pipeline -o long.mp4 --frames 1025 \\
          --prompt "a red circle moving left slowly" --prompt "64:a red circle moving up slowly"
    """
    schedule = prompt_schedule(prompt_options, storyboard)
    if schedule and (prompt or prompts_file):
        raise click.UsageError("give PROMPT/--prompts-file or a schedule (--prompt/--storyboard), not both")
    prompts = [schedule] if schedule else read_prompts(prompt, prompts_file)
    outputs = output_paths(out, len(prompts), num_samples)
    check_outputs(outputs, preview, overwrite, resolve_frames(frames, seconds, fps, None))  # before the model loads
    check_pipeline(pipeline_dir)  # before torch is imported
    from t2v.generator.pipeline import GenerationOptions

    sampling = sampling_config(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale,
                               steps=steps)
    options = GenerationOptions(frames=frames, size=size, fps=fps, force=force, sampling=sampling, seed=seed,
                                window=window, num_samples=num_samples)
    pipeline = load_pipeline(pipeline_dir, device, dtype)
    options = pipeline.resolve(options)  # the pipeline's size, rate, length and window where none is given
    options = replace(options, frames=resolve_frames(frames, seconds, options.fps, options.frames))
    check_outputs(outputs, preview, overwrite, options.frames)  # the default length is known now: before sampling
    (height, width), frames = options.size, options.frames
    for paths, text in zip(outputs, prompts):
        click.echo(f"{describe_prompt(text)}: {frames} frame{'s' * (frames != 1)} of {width}x{height} at "
                   f"{options.fps:g} fps")
        with echo_warnings(), ProgressBar(frames, "generate", "frame", quiet) as progress:
            written = pipeline.generate_files(text, paths, options, preview=preview_path(paths[0], preview),
                                              overwrite=overwrite, progress=progress)
        echo_written(written)


@click.command()
@click.argument("pipeline_dir", metavar="PIPELINE", type=PIPELINE)
@click.argument("in_video", type=click.Path(path_type=Path))
@output_options
@click.option("--size", type=SIZE, help="Resize and crop IN_VIDEO to WxH, a trained size (default: its own).")
@click.option("--context-frames", type=click.IntRange(min=1), help="Last frames of IN_VIDEO the model sees "
              "(default: its window less one latent frame).")
@click.option("--only-new", is_flag=True, help="Write only the continuation, not IN_VIDEO before it.")
def extend(pipeline_dir: Path, in_video: Path, out: str, overwrite: bool, frames: int | None,
           seconds: float | None, fps: float | None, force: bool, prompt_options: tuple[str, ...],
           storyboard: Path | None, window: int | None, cfg_scale: float | None, temperature: float | None,
           top_k: int | None, top_p: float | None, steps: int | None, device: str, dtype: str, seed: int,
           num_samples: int, preview: bool, quiet: bool, size: tuple[int, int] | None,
           context_frames: int | None, only_new: bool) -> None:
    """Continue IN_VIDEO with PIPELINE (a pipeline directory, or the name of a shipped one: `shapes`): its last
    frames are the context, the output holds it followed by the continuation, at IN_VIDEO's size and frame rate (or
    --size / --fps: it is resized and resampled first); those must be ones the generator was trained on (or
    --force). An existing output is refused unless --overwrite; a folder t2v did not write is never replaced.

    \b
    Examples:
      t2v extend shapes clip.mp4 -o longer.mp4 --frames 64      # the shipped pipeline
      t2v extend runs/shapes/pipeline clip.mp4 -o longer.mp4 --frames 64
      t2v extend runs/shapes/pipeline clip.mp4 -o next.mp4 --prompt "a red circle moving up slowly" --only-new
      t2v extend runs/shapes/pipeline big_clip.mp4 -o longer.mp4 --size 64x64 --fps 8
      t2v extend runs/shapes/pipeline clip.mp4 -o longer.mp4 --frames 64 --overwrite
    """
    from t2v.tokenizer.outputs import IMAGE, output_kind

    schedule = prompt_schedule(prompt_options, storyboard)
    paths = output_paths(out, 1, num_samples)[0]
    if output_kind(out) == IMAGE and not only_new:
        raise ValueError(f"cannot write {out}: a {Path(out).suffix} file holds one image but the output holds "
                         f"{in_video} and its continuation; use a folder path (no suffix), a video suffix (.mp4, "
                         ".webm, .gif), or --only-new --frames 1")
    if not in_video.exists():  # before torch is imported (probe, below, says the same)
        raise FileNotFoundError(f"video not found: {in_video}")
    check_outputs([paths], preview, overwrite, resolve_frames(frames, seconds, fps, None))
    check_pipeline(pipeline_dir)
    from t2v.generator.pipeline import GenerationOptions
    from t2v.tokenizer.video_io import probe

    info = probe(in_video)  # a broken IN_VIDEO is refused here, before the model loads
    rate = fps or info.fps
    check_outputs([paths], preview, overwrite, resolve_frames(frames, seconds, rate, None))  # its length at its rate
    sampling = sampling_config(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale,
                               steps=steps)
    options = GenerationOptions(frames=frames, size=size, fps=fps, force=force, sampling=sampling, seed=seed,
                                window=window, num_samples=num_samples)  # size, fps None: IN_VIDEO's own
    pipeline = load_pipeline(pipeline_dir, device, dtype)
    options = replace(options, frames=resolve_frames(frames, seconds, rate, pipeline.info.frames))
    check_outputs([paths], preview, overwrite, options.frames)

    def announce(resolved: GenerationOptions, context: int) -> None:
        """The resolved settings, once IN_VIDEO is read (its context frames counted), before sampling."""
        (height, width), frames = resolved.size, resolved.frames
        click.echo(f"continuing {in_video} with {frames} frames of {width}x{height} at {resolved.fps:g} fps from its "
                   f"last {context}")

    with echo_warnings(), ProgressBar(options.frames, "extend", "frame", quiet) as progress:
        written = pipeline.extend_file(in_video, paths, schedule, options, context_frames=context_frames,
                                       only_new=only_new, preview=preview_path(paths[0], preview),
                                       overwrite=overwrite, on_start=announce, progress=progress)
    echo_written(written)
