"""The page of `t2v serve`: a gradio Blocks around one loaded `TextToVideo`, and its launch.

Tab Generate: a prompt (or `[FRAME:]TEXT` lines, or a storyboard file), length in frames or seconds, one of the
pipeline's trained sizes and rates, seed and guidance; the frames show as each chunk is decoded (stream.py), then
the mp4 plays and downloads. Tab Extend: the same for an uploaded video, continued. A bad input is a visible error
with the CLI's one-line message (`gr.Error`). The pipeline is loaded once and shared: the queue runs up to
`concurrency` generations at a time (both tabs together) in worker threads, so every session's page stays
responsive; Stop ends a generation and leaves no file.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from t2v.generator.sample import SamplingConfig
from t2v.serve.inputs import FRAMES, SECONDS, Length, choices, page_options, parse_rate, read_prompt
from t2v.serve.stream import Update, extend_updates, generate_updates, output_path

# What a user can fix: shown on the page as one line (as `t2v generate` prints them), not as a traceback.
USER_ERRORS = (ValueError, KeyError, OSError)
EXAMPLE_PROMPT = "a red circle moving left slowly"
CSS = """
#gen-frame img, #gen-strip img, #ext-frame img, #ext-strip img { image-rendering: pixelated; }
#gen-frame img, #ext-frame img { width: 100%; height: 100%; object-fit: contain; }
"""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    return " ".join(str(message).split())


def status_text(update: Update | None, verb: str = "Generating") -> str:
    """The status line: what is being made and how far it is; on the last update, the file."""
    if update is None:
        return f"**{verb}…** sampling the first frames"
    if update.video is None:
        return f"**{verb}…** frame {update.done} of {update.total} (update {update.count})"
    return f"**Done:** {update.done} frames in {update.count} updates → `{update.video.name}`"


def views(updates: Iterator[Update], verb: str) -> Iterator[tuple]:
    """The page's outputs (status, newest frame, newest frames, video, download) of each update: the frames as
    they come, the video and its download link once the file is whole. A user error on the way is shown."""
    yield status_text(None, verb), None, None, None, None
    try:
        for update in updates:
            if update.video is None:
                yield status_text(update, verb), update.frame, update.strip(), gr.skip(), gr.skip()
            else:
                path = str(update.video)
                yield status_text(update, verb), update.frame, update.strip(), path, path
    except USER_ERRORS as error:
        raise gr.Error(one_line(error)) from None


@dataclass
class Controls:
    """The option controls a tab shares: length, size, rate, seed, guidance."""

    length: gr.Number
    unit: gr.Radio
    size: gr.Dropdown
    fps: gr.Dropdown
    seed: gr.Number
    guidance: gr.Slider
    info: gr.Markdown

    def inputs(self) -> list:
        return [self.length, self.unit, self.size, self.fps, self.seed, self.guidance]


def option_controls(pipeline, prefix: str, own: bool) -> Controls:
    """Length, size and rate (the pipeline's trained ones; `own`: the input video's first), seed and guidance;
    a line under them says the length in frames and seconds as they change."""
    sizes, rates = choices(pipeline.trained_sizes, pipeline.trained_rates, own)
    default_size, default_rate = choices([tuple(pipeline.info.size)], [pipeline.info.fps])
    with gr.Row():
        length = gr.Number(pipeline.info.frames, label="Length", minimum=0, elem_id=f"{prefix}-length")
        unit = gr.Radio([FRAMES, SECONDS], value=FRAMES, label="in", elem_id=f"{prefix}-unit")
    with gr.Row():
        size = gr.Dropdown(sizes, value=sizes[0] if own else default_size[0], label="Size (WxH)",
                           elem_id=f"{prefix}-size")
        fps = gr.Dropdown(rates, value=rates[0] if own else default_rate[0], label="Frame rate (fps)",
                          elem_id=f"{prefix}-fps")
    with gr.Row():
        seed = gr.Number(0, label="Seed", precision=0, elem_id=f"{prefix}-seed")
        guidance = gr.Slider(0, 10, value=SamplingConfig().cfg_scale, step=0.5, label="Guidance (1 = off)",
                             elem_id=f"{prefix}-guidance")
    info = gr.Markdown(Length(pipeline.info.frames).describe(None if own else pipeline.info.fps),
                       elem_id=f"{prefix}-length-info")

    def describe(value: float | None, unit_name: str, rate: str) -> str:
        try:
            return Length(value, unit_name).describe(parse_rate(rate))
        except ValueError as error:
            return str(error)

    for control in (length, unit, fps):
        control.change(describe, [length, unit, fps], info, queue=False, show_progress="hidden")
    return Controls(length, unit, size, fps, seed, guidance, info)


def result_panel(prefix: str) -> list:
    """Status, the newest frame, the newest frames, the finished video and its download link."""
    status = gr.Markdown("Ready.", elem_id=f"{prefix}-status")
    with gr.Row():
        frame = gr.Image(label="Newest frame", type="numpy", format="png", interactive=False, height=256,
                         elem_id=f"{prefix}-frame")
        video = gr.Video(label="Video", interactive=False, height=256, elem_id=f"{prefix}-video")
    strip = gr.Image(label="Newest frames", type="numpy", format="png", interactive=False, height=96,
                     elem_id=f"{prefix}-strip")
    download = gr.File(label="Download mp4", interactive=False, elem_id=f"{prefix}-download")
    return [status, frame, strip, video, download]


def generate_tab(pipeline, out_dir: Path, concurrency: int, max_frames: int | None) -> None:
    """Tab Generate: prompt or storyboard, options, Generate/Stop; the frames as they come, then the mp4."""

    def generate(text: str, storyboard: str | None, length: float, unit: str, size: str, fps: str, seed: float,
                 guidance: float) -> Iterator[tuple]:
        try:
            prompt = read_prompt(text, storyboard)
            options = page_options(pipeline, Length(length, unit), size, fps, seed, guidance, max_frames)
            updates = generate_updates(pipeline, prompt, options, output_path(out_dir, "video"))
        except USER_ERRORS as error:
            raise gr.Error(one_line(error)) from None
        yield from views(updates, "Generating")

    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Prompt", lines=3, placeholder=f"{EXAMPLE_PROMPT}\n(or one [FRAME:]TEXT per "
                              "line: 0:…, 64:…)", elem_id="gen-prompt")
            storyboard = gr.File(label="or a storyboard (YAML/JSON list of {at, prompt})", type="filepath",
                                 file_types=[".yaml", ".yml", ".json"], height=80, elem_id="gen-storyboard")
            controls = option_controls(pipeline, "gen", own=False)
            start, stop = action_buttons("gen", "Generate")
        with gr.Column():
            outputs = result_panel("gen")
    connect(start, stop, generate, [text, storyboard, *controls.inputs()], outputs, concurrency)


def extend_tab(pipeline, out_dir: Path, concurrency: int, max_frames: int | None) -> None:
    """Tab Extend: an uploaded video, an optional prompt, options (the video's own size and rate by default),
    Extend/Stop; the new frames as they come, then the mp4 (the upload and its continuation)."""

    def extend(video: str | None, text: str, only_new: bool, length: float, unit: str, size: str, fps: str,
               seed: float, guidance: float) -> Iterator[tuple]:
        try:
            if not video:
                raise ValueError("no video to extend: upload one (mp4, webm or gif)")
            video_fps = _video_fps(video) if parse_rate(fps) is None else None  # a broken file: refused here
            prompt = read_prompt(text, required=False)
            options = page_options(pipeline, Length(length, unit), size, fps, seed, guidance, max_frames, video_fps)
            updates = extend_updates(pipeline, video, prompt, options, output_path(out_dir, "extended"), only_new)
        except USER_ERRORS as error:
            raise gr.Error(one_line(error)) from None
        yield from views(updates, "Extending")

    with gr.Row():
        with gr.Column():
            video = gr.Video(label="Video to extend", sources=["upload"], height=200, elem_id="ext-video")
            text = gr.Textbox(label="Prompt (optional)", lines=2, placeholder=EXAMPLE_PROMPT, elem_id="ext-prompt")
            only_new = gr.Checkbox(False, label="Only the new frames in the file", elem_id="ext-only-new")
            controls = option_controls(pipeline, "ext", own=True)
            start, stop = action_buttons("ext", "Extend")
        with gr.Column():
            outputs = result_panel("ext")
    connect(start, stop, extend, [video, text, only_new, *controls.inputs()], outputs, concurrency)


def action_buttons(prefix: str, label: str) -> tuple:
    """The tab's start button (`label`) and its Stop, side by side."""
    with gr.Row():
        return (gr.Button(label, variant="primary", elem_id=f"{prefix}-start"),
                gr.Button("Stop", elem_id=f"{prefix}-stop"))


def connect(start, stop, work: Callable, inputs: list, outputs: list, concurrency: int) -> None:
    """`start` streams `work`'s views into `outputs` (every tab's work in one concurrency group of `concurrency`
    at a time, shared by all sessions); `stop` cancels it."""
    event = start.click(work, inputs, outputs, show_progress="hidden", concurrency_id="generation",
                        concurrency_limit=concurrency)
    stop.click(_stopped, None, outputs[0], cancels=[event], queue=False)


def build_app(pipeline, out_dir: str | Path, name: str = "pipeline", concurrency: int = 1,
              max_frames: int | None = None) -> gr.Blocks:
    """The page around a loaded `pipeline`; videos are written to `out_dir`; at most `concurrency` generations
    run at once (both tabs, every session) and each makes at most `max_frames` frames."""
    sizes, rates = choices(pipeline.trained_sizes, pipeline.trained_rates)
    # gradio's cache (uploads, each shown frame): files older than an hour are removed every 10 minutes
    with gr.Blocks(title=f"t2v · {name}", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown(f"## t2v · {name}\nTrained sizes {', '.join(sizes)} (WxH) at {', '.join(rates)} fps. Frames "
                    "appear as they are generated; the mp4 downloads when the video is whole.")
        with gr.Tab("Generate", elem_id="tab-generate"):
            generate_tab(pipeline, Path(out_dir), concurrency, max_frames)
        with gr.Tab("Extend", elem_id="tab-extend"):
            extend_tab(pipeline, Path(out_dir), concurrency, max_frames)
    return app


def _stopped() -> str:
    return "**Stopped.** Nothing was written."


def _video_fps(path: str) -> float:
    from t2v.tokenizer.video_io import probe

    return probe(path).fps


def launch(app: gr.Blocks, host: str, port: int, out_dir: str | Path,
           on_ready: Callable[[str], None] | None = None) -> None:
    """Serve `app` on host:port until interrupted (Ctrl+C); `on_ready(url)` once it answers. Its files: `out_dir`
    (the videos), gradio's cache (uploads, shown frames). No request leaves the machine: no analytics, no share
    link, local fonts."""
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    app.queue(max_size=64)
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, share=False,
                           allowed_paths=[str(out_dir)], show_error=True, ssr_mode=False, theme=theme, css=CSS,
                           footer_links=["api", "settings"], run_history=False)
    try:
        if on_ready is not None:
            on_ready(url)
        while app.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
