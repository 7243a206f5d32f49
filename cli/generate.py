"""`t2v generate`: prompts → video files with a trained pipeline directory."""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.options import SIZE, sampling_config, sampling_options


def output_paths(out: Path, num_prompts: int, num_samples: int) -> list[list[Path]]:
    """One path per (prompt, sample): OUT itself for a single video, else OUT's name + _pNNN / _sN."""
    def name(prompt: int, sample: int) -> Path:
        tags = (f"_p{prompt:03d}" if num_prompts > 1 else "") + (f"_s{sample}" if num_samples > 1 else "")
        return out.with_name(f"{out.stem}{tags}{out.suffix}")
    return [[name(p, s) for s in range(num_samples)] for p in range(num_prompts)]


def read_prompts(prompt: str | None, prompts_file: Path | None) -> list[str]:
    prompts = [prompt] if prompt is not None else []
    if prompts_file is not None:
        prompts += [line.strip() for line in prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        raise click.UsageError("give a PROMPT or --prompts-file FILE (one prompt per line)")
    return prompts


@click.command()
@click.argument("pipeline_dir", type=click.Path(path_type=Path))
@click.argument("prompt", required=False)
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output: .mp4, .gif, .webm, or a path without extension for a folder of PNG frames.")
@click.option("--frames", type=click.IntRange(min=1), help="Number of frames (default: the pipeline's clip length).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Length in seconds (instead of --frames).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate of the file (default: the data's).")
@click.option("--size", type=SIZE, help="Frame size WxH (default: the pipeline's training size).")
@sampling_options
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: a seed gives the same video.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos per prompt (files OUT_s0, OUT_s1, …).")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="More prompts, one per line (files OUT_p000, OUT_p001, …).")
@click.option("--preview", is_flag=True, help="Also write a contact-sheet PNG of the frames beside each output.")
def generate(pipeline_dir: Path, prompt: str | None, out: Path, frames: int | None, seconds: float | None,
             fps: float | None, size: tuple[int, int] | None, cfg_scale: float | None, temperature: float | None,
             top_k: int | None, top_p: float | None, seed: int, num_samples: int, prompts_file: Path | None, preview: bool) -> None:
    """Generate videos for PROMPT with the pipeline in PIPELINE_DIR (made by `t2v recipe run`).

    \b
    Examples:
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4
      t2v generate runs/shapes/pipeline "a blue diamond moving up quickly" -o diamond.gif --num-samples 4 --preview
      t2v generate runs/shapes/pipeline --prompts-file prompts.txt -o out/video.mp4 --cfg 4 --top-k 100
    """
    from t2v.generator.pipeline import TextToVideo
    from t2v.tokenizer.video_io import contact_sheet, write_image, write_video

    if frames is not None and seconds is not None:
        raise click.UsageError("give --frames or --seconds, not both")
    prompts = read_prompts(prompt, prompts_file)
    sampling = sampling_config(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
    pipeline = TextToVideo.from_pretrained(pipeline_dir)
    fps = fps or pipeline.info.fps
    if seconds is not None:
        frames = max(1, round(seconds * fps))
    paths = output_paths(out, len(prompts), num_samples)
    for prompt_paths, text in zip(paths, prompts):
        videos = pipeline([text] * num_samples, frames=frames, size=size, sampling=sampling, seed=seed)
        for path, video in zip(prompt_paths, videos):
            write_video(path, video, fps)
            click.echo(f"{text!r} → {path} ({len(video)} frames, {video.shape[2]}x{video.shape[1]}, {fps:g} fps)")
        if preview:
            sheet = prompt_paths[0].with_name(f"{prompt_paths[0].stem}.preview.png")
            write_image(sheet, contact_sheet(videos))
            click.echo(f"preview → {sheet}")
