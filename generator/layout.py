"""A pipeline directory's layout and its check, without torch (the CLI checks its arguments before heavy imports).

`TextToVideo.save_pretrained` writes `video_tokenizer/`, `generator/`, `text_tokenizer/` and `pipeline.json` (and
`text_encoder/` for a generator that reads a frozen text encoder);
`check_pipeline_dir` is the one place that says what a folder missing them lacks.
"""
from __future__ import annotations

from pathlib import Path

PIPELINE_FILE = "pipeline.json"
PARTS = ("video_tokenizer", "generator", "text_tokenizer")
ENCODER_PART = "text_encoder"  # the copy of a frozen text encoder, for a generator that reads one


def check_pipeline_dir(directory: Path) -> None:
    """A one-line FileNotFoundError when `directory` is not a pipeline directory."""
    if not directory.is_dir():
        raise FileNotFoundError(f"pipeline directory not found: {directory} (make one with "
                                "`t2v recipe run shapes --out DIR`, or name a shipped pipeline: shapes)")
    if not (directory / PIPELINE_FILE).is_file():
        raise FileNotFoundError(f"{directory} is not a pipeline directory: no {PIPELINE_FILE} (expected "
                                f"{', '.join(PARTS)} and {PIPELINE_FILE})")
