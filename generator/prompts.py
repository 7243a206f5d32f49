"""Prompt schedules: which prompt holds from which frame of a long video.

A schedule is a list of `PromptChange(at, prompt)` in increasing `at` (pixel frames), the first at 0. It comes
from repeated `--prompt "[AT:]TEXT"` options or a storyboard file (YAML or JSON list of `{at, prompt}`). The
sampler changes captions between latent frames: a change applies from the first latent frame that starts at or
after `at`, so a new prompt never shows before its frame.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class PromptChange:
    at: int  # first frame (0-based) shown under this prompt
    prompt: str


def parse_prompt(text: str) -> PromptChange:
    """`"64:a red circle moving up slowly"` → PromptChange(64, …); without `N:` the prompt starts at frame 0."""
    match = re.fullmatch(r"\s*(\d+)\s*:(.*)", text, flags=re.DOTALL)
    at, prompt = (int(match.group(1)), match.group(2)) if match else (0, text)
    if not prompt.strip():
        raise ValueError(f"empty prompt in {text!r}: write it as \"TEXT\" or \"FRAME:TEXT\"")
    return PromptChange(at, prompt.strip())


def load_storyboard(path: str | Path) -> list[PromptChange]:
    """A YAML or JSON file holding a list of `{at: FRAME, prompt: TEXT}`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"storyboard not found: {path}")
    text = path.read_text()
    try:
        entries = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{str(error).splitlines()[0]}") from None
    example = "[{at: 0, prompt: \"a red circle moving left slowly\"}, {at: 64, prompt: \"…\"}]"
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty list of {{at, prompt}} entries, e.g. {example}")
    changes = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("at"), int) or isinstance(entry.get("at"), bool) \
                or not isinstance(entry.get("prompt"), str):
            raise ValueError(f"{path}: entry {number} must be {{at: FRAME (an integer), prompt: TEXT}}, got {entry!r}")
        changes.append(parse_prompt(f"{entry['at']}:{entry['prompt']}"))
    return changes


def check_schedule(changes: list[PromptChange], frames: int) -> list[PromptChange]:
    """The schedule, checked against a video of `frames` frames: starts at 0, strictly increasing, all inside."""
    if not changes:
        raise ValueError("give at least one prompt")
    if changes[0].at != 0:
        raise ValueError(f"the first prompt starts at frame {changes[0].at}: the schedule must start at frame 0 "
                         "(give one prompt without a FRAME: prefix)")
    for before, after in zip(changes, changes[1:]):
        if after.at <= before.at:
            raise ValueError(f"prompts out of order: frame {after.at} comes after frame {before.at}; list them by "
                             "increasing frame")
    if changes[-1].at >= frames:
        raise ValueError(f"a prompt starts at frame {changes[-1].at}, beyond the video's {frames} frames: ask for "
                         "more frames or an earlier start")
    return changes
