"""The streaming step of the page: each chunk `TextToVideo` decodes becomes an `Update` at once, while the same
frames stream into the mp4 (tokenizer/video_io.py's `VideoWriter`: a temporary sibling renamed into place when
the video is whole, so an error or a stopped generation leaves no file). Pure functions of a pipeline and paths:
the tests drive them without a browser, the page (app.py) only shows what they yield.

`generate_updates` and `extend_updates` check everything they can (prompt, size, rate, the input video) when
called, before the first frame is sampled, and return the iterator of updates; the last update names the file.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class Update:
    """What the page shows after a chunk: its frames (of the first video), how far the video is, and on the last
    update the finished file."""

    frames: np.ndarray  # uint8 (T_i, H, W, 3): the frames decoded since the last update
    done: int  # new frames decoded so far
    total: int  # new frames asked for
    count: int  # updates so far (the first chunk is update 1)
    video: Path | None = None  # the finished mp4 (only on the last update, once it is in place)

    @property
    def frame(self) -> np.ndarray:
        """The newest frame (H, W, 3)."""
        return self.frames[-1]

    def strip(self, max_columns: int = 9) -> np.ndarray:
        """The chunk's frames side by side (up to `max_columns`, spread evenly), one image."""
        from t2v.tokenizer.video_io import contact_sheet

        return contact_sheet(self.frames[None], max_columns=max_columns)


def output_path(directory: str | Path, kind: str = "video") -> Path:
    """A new mp4 path in `directory`, unique across sessions: `<kind>-<12 hex digits>.mp4`."""
    return Path(directory) / f"{kind}-{uuid.uuid4().hex[:12]}.mp4"


def stream_to_file(chunks: Iterable[np.ndarray], path: str | Path, fps: float, total: int,
                   before: Iterable[np.ndarray] = ()) -> Iterator[Update]:
    """Write the first video of each uint8 chunk (B, T_i, H, W, 3) to `path` (after the `before` frames
    (T, H, W, 3)), yielding an `Update` as each chunk arrives; then, once the file is closed and in place, a last
    update naming it. Abandoning the iterator (a stopped generation) or an error removes the partial file."""
    from t2v.tokenizer.video_io import VideoWriter

    done = count = 0
    last = None
    with VideoWriter(path, fps) as writer:
        for part in before:
            writer.write(part)
        for chunk in chunks:
            last = chunk[0]
            writer.write(last)
            done, count = done + len(last), count + 1
            yield Update(last, done, total, count)
    if last is not None:
        yield Update(last, done, total, count, Path(path))


def generate_updates(pipeline, prompt, options, path: str | Path) -> Iterator[Update]:
    """`pipeline.generate(prompt, options)` streamed to the mp4 `path` and to the page (`stream_to_file`). The
    prompt, size and rate are checked here (one-line ValueErrors), before the iterator is returned."""
    options = pipeline.resolve(options)
    chunks = pipeline.generate(prompt, options)
    return stream_to_file(chunks, path, options.fps, options.frames)


def extend_updates(pipeline, video: str | Path, prompt, options, path: str | Path,
                   only_new: bool = False) -> Iterator[Update]:
    """Continue the video file `video` (as `TextToVideo.extend_file`): the file at `path` holds the input (unless
    `only_new`), then the `options.frames` new frames, and each chunk of new frames is an update. Size and rate: the
    input's own, or `options.size` (the input is resized and cropped) and `options.fps` (it is resampled); they,
    the prompt and the file itself are checked here, before the iterator is returned. The input streams: only its
    last frames (the context) are kept."""
    if not Path(video).is_file():
        raise FileNotFoundError(f"video not found: {video}")
    options, before, after = pipeline.extension(video, prompt, options, only_new=only_new)  # a broken file: refused
    if prompt is not None and not isinstance(prompt, str):
        from t2v.generator.prompts import check_schedule

        check_schedule(prompt, options.frames)
    return stream_to_file(after, path, options.fps, options.frames, before=before)
