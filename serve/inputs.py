"""The page's controls → what `TextToVideo` takes: a prompt (or schedule) and one `GenerationOptions`.

The text box takes what `t2v generate` takes: one line is a prompt; several lines are `[FRAME:]TEXT` prompt
changes (as repeated `--prompt`), and a storyboard file (YAML or JSON, as `--storyboard`) may replace the text.
Bad input is a one-line ValueError with the CLI's wording (the page shows it as an error message). Nothing here
imports torch or gradio at module level.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FRAMES, SECONDS = "frames", "seconds"  # the units of the length control
OWN = "the video's own"  # the Extend tab's choice for the input video's size or rate


def read_prompt(text: str | None, storyboard: str | Path | None = None, required: bool = True):
    """The prompt of the text box: one line → that prompt (a str), several lines → a list of `PromptChange`
    (`[FRAME:]TEXT` each, the first from frame 0); or the storyboard file's schedule. Nothing given: None when not
    `required` (extend continues without a caption), else the CLI's empty-prompt error."""
    from t2v.generator.prompts import load_storyboard, parse_prompt

    lines = [line for line in (text or "").splitlines() if line.strip()]
    if lines and storyboard:
        raise ValueError("give a prompt or a storyboard, not both")
    if storyboard:
        return load_storyboard(storyboard)
    if not lines:
        if not required:
            return None
        parse_prompt("")  # raises the CLI's message: empty prompt in '' …
    changes = [parse_prompt(line) for line in lines]
    if len(changes) == 1 and changes[0].at == 0:
        return changes[0].prompt
    return changes


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'64x48' (WxH, as `--size`) → (48, 64) as (H, W); '64' → (64, 64); empty or `OWN` → None."""
    if not text or text == OWN:
        return None
    found = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not found:
        raise ValueError(f"size {text!r} is not N or WxH (e.g. 64 or 160x96)")
    width = int(found.group(1))
    height = int(found.group(2) or width)
    if width <= 0 or height <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return height, width


def parse_rate(text: str | float | None) -> float | None:
    """A frame rate choice ('8', 8.0) → 8.0; empty or `OWN` → None."""
    if text is None or text == "" or text == OWN:
        return None
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"frame rate {text!r} is not a number") from None
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {rate:g}")
    return rate


@dataclass(frozen=True)
class Length:
    """The length control: a number of frames or of seconds."""

    value: float | None
    unit: str = FRAMES

    def frames(self, fps: float, max_frames: int | None = None) -> int:
        """The frame count at `fps` (seconds are rounded, at least one frame); over `max_frames` is refused."""
        if self.unit not in (FRAMES, SECONDS):
            raise ValueError(f"unknown length unit {self.unit!r}: use {FRAMES} or {SECONDS}")
        if self.value is None or self.value <= 0:
            raise ValueError(f"the length must be positive, got {self.value}")
        if self.unit == SECONDS:
            count = max(1, round(self.value * fps))
        elif self.value != int(self.value):
            raise ValueError(f"number of frames must be a whole number, got {self.value:g}")
        else:
            count = int(self.value)
        if max_frames is not None and count > max_frames:
            raise ValueError(f"{count} frames asked for, this server makes at most {max_frames} (t2v serve "
                             "--max-frames)")
        return count

    def describe(self, fps: float | None) -> str:
        """'33 frames = 4.1 s at 8 fps' (or '… at the video's rate' while the rate is not known)."""
        try:
            if fps is None:
                return f"{self.value:g} {self.unit} at the video's rate"
            frames = self.frames(fps)
        except (TypeError, ValueError) as error:
            return str(error)
        return f"{frames} frame{'s' * (frames != 1)} = {frames / fps:.1f} s at {fps:g} fps"


def choices(sizes: list[tuple[int, int]], rates: list[float], own: bool = False) -> tuple[list[str], list[str]]:
    """The size ('WxH') and rate ('8') choices of the page: the pipeline's trained ones, `OWN` first if `own`."""
    first = [OWN] if own else []
    return first + [f"{width}x{height}" for height, width in sizes], first + [f"{rate:g}" for rate in rates]


def page_options(pipeline, length: Length, size: str | None, fps: str | float | None, seed: float | None,
                 guidance: float | None, max_frames: int | None = None, video_fps: float | None = None):
    """The `GenerationOptions` of the page's controls; an unset size or rate takes the pipeline's default (or, for
    extend, the video's: `video_fps` converts seconds at its rate). Sizes and rates are checked when generating
    (`TextToVideo.condition_for`: untrained ones are refused with the trained ones named)."""
    from dataclasses import replace

    from t2v.generator.pipeline import GenerationOptions
    from t2v.generator.sample import SamplingConfig

    if seed is None or seed != int(seed):
        raise ValueError(f"the seed must be a whole number, got {seed}")
    sampling = SamplingConfig() if guidance is None else replace(SamplingConfig(), cfg_scale=float(guidance))
    rate = parse_rate(fps)
    frames = length.frames(rate or video_fps or pipeline.info.fps, max_frames)
    return GenerationOptions(frames=frames, size=parse_size(size), fps=rate, sampling=sampling, seed=int(seed),
                             decode_every=1)  # the page shows each latent frame's pixels as soon as it is sampled
