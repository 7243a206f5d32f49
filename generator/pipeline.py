"""`TextToVideo`: prompt → caption ids → sampled codes → video tokenizer → uint8 frames (and a video file).

The one module that joins the video tokenizer and the generator. A pipeline directory holds
`video_tokenizer/`, `generator/`, `text_tokenizer/` (each its own `save_pretrained` output) and `pipeline.json`
(format version, default frame rate, size, length and sampling window). Frame counts are rounded up to what the
tokenizer's temporal stride allows (1 + s·k) and the decoded video is trimmed back.

Sizes and frame rates: the generator is conditioned on the latent grid and the rate (size and fps ids of its
prefix, `vocab.py`), and knows only those it was trained on. `generate(size=, fps=)` and `extend` check what is
asked for (`conditions`): an untrained size or rate is a ValueError naming the trained ones; with `force=True` the
video keeps the size and rate asked for and the prefix names the nearest trained ones (a warning says which).

Videos of any length: the sampler rolls a window of latent frames (`generate`), and the tokenizer decodes its
output a chunk at a time through its causal cache, so memory does not grow with the length; `extend` goes on from
the last frames of a given video, and a schedule of `PromptChange`s switches prompts along the way.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
import torch

from t2v.generator.model import VideoGenerator, read_json
from t2v.generator.sample import SamplingConfig, Schedule, sample_frames
from t2v.generator.prompts import PromptChange, check_schedule, latent_start
from t2v.generator.text import TextTokenizer
from t2v.generator.vocab import format_grid, format_rates
from t2v.core.atomic import atomic_directory, atomic_write_text
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import VideoWriter, resize_and_crop

PIPELINE_FILE = "pipeline.json"
FORMAT_VERSION = 1
PARTS = ("video_tokenizer", "generator", "text_tokenizer")
_REPAIR = "copy the pipeline directory again, or re-export it (`t2v recipe run shapes --out DIR` writes one)"
Prompt = Union[str, list[str], list[PromptChange]]


@dataclass
class PipelineInfo:
    """What `pipeline.json` records: defaults for a call without options."""

    fps: float = 8.0
    size: tuple[int, int] = (64, 64)  # (H, W)
    frames: int = 17
    window: int | None = None  # latent frames the sampler keeps for longer videos (None: those of `frames`)
    format_version: int = FORMAT_VERSION


class TextToVideo:
    """A video tokenizer, a generator and a caption tokenizer that together turn prompts into videos."""

    def __init__(self, video_tokenizer: VideoTokenizer, generator: VideoGenerator, text: TextTokenizer,
                 info: PipelineInfo | None = None) -> None:
        if video_tokenizer.codebook_size != generator.config.codebook_size:
            raise ValueError(f"video tokenizer has {video_tokenizer.codebook_size} codes but the generator predicts "
                             f"{generator.config.codebook_size}: they were not trained together")
        if text.size != generator.config.text_size:
            raise ValueError(f"text tokenizer has {text.size} pieces but the generator reads "
                             f"{generator.config.text_size}: they were not trained together")
        self.video_tokenizer = video_tokenizer.eval()
        self.generator = generator.eval()
        self.text = text
        self.info = info or PipelineInfo()
        self.condition_for(tuple(self.info.size), self.info.fps)  # the defaults must be trained ones

    @classmethod
    def assemble(cls, tokenizer_dir: str | Path, generator: VideoGenerator, text: TextTokenizer, fps: float,
                 grid: tuple[int, int, int]) -> "TextToVideo":
        """A pipeline around a trained tokenizer directory and an in-memory generator; its default size and length
        are those of a training clip's latent `grid` (t, h, w)."""
        video_tokenizer = VideoTokenizer.from_pretrained(tokenizer_dir)
        t, h, w = grid
        stride = video_tokenizer.config.spatial_stride
        info = PipelineInfo(fps=fps, size=(h * stride, w * stride), frames=video_tokenizer.num_frames(t))
        return cls(video_tokenizer, generator, text, info)

    # --- saving and loading ---
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the pipeline directory (built under a temporary name, then renamed into place)."""
        with atomic_directory(directory) as tmp:
            self.video_tokenizer.save_pretrained(tmp / "video_tokenizer")
            self.generator.save_pretrained(tmp / "generator")
            self.text.save(tmp / "text_tokenizer")
            atomic_write_text(tmp / PIPELINE_FILE, json.dumps(asdict(self.info), indent=2))
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "TextToVideo":
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"pipeline directory not found: {directory} (make one with "
                                    "`t2v recipe run shapes --out DIR`)")
        if not (directory / PIPELINE_FILE).is_file():
            raise FileNotFoundError(f"{directory} is not a pipeline directory: no {PIPELINE_FILE} (expected "
                                    f"{', '.join(PARTS)} and {PIPELINE_FILE})")
        info = read_info(directory / PIPELINE_FILE)
        return cls(VideoTokenizer.from_pretrained(directory / "video_tokenizer"),
                   VideoGenerator.from_pretrained(directory / "generator"),
                   TextTokenizer.load(directory / "text_tokenizer"), info)

    # --- sizes and rates ---
    @property
    def trained_sizes(self) -> list[tuple[int, int]]:
        """The frame sizes (H, W) the generator was trained on (its latent grids × the tokenizer's stride)."""
        stride = self.video_tokenizer.config.spatial_stride
        return [(h * stride, w * stride) for h, w in self.generator.vocab.sizes]

    @property
    def trained_rates(self) -> list[float]:
        return list(self.generator.vocab.rates)

    def condition_for(self, size: tuple[int, int], fps: float, force: bool = False) -> tuple[tuple[int, int], float]:
        """The trained latent grid (h, w) and rate the prefix names for frames of `size` (H, W) at `fps`.

        One never trained is refused with a one-line ValueError naming the trained ones, unless `force`: then the
        nearest trained one is named instead (aspect ratio first, then area; rates by ratio), with a warning.
        """
        vocab = self.generator.vocab
        _, h, w = self.video_tokenizer.latent_shape(1, *size)  # a clear error for sizes the strides refuse
        unknown = ([f"size {format_grid(size)}"] if not vocab.knows_grid((h, w)) else []) + (
            [f"{fps:g} fps"] if not vocab.knows_rate(fps) else [])
        if not unknown:
            return (h, w), fps
        grid, rate = vocab.nearest_grid((h, w)), vocab.nearest_rate(fps)
        known = (f"sizes {', '.join(map(format_grid, self.trained_sizes))} (WxH) and rates "
                 f"{format_rates(self.trained_rates)}")
        what = " and ".join(unknown) + (" were" if len(unknown) > 1 else " was")
        if not force:
            raise ValueError(f"{what} never trained: the generator knows {known}; ask for one of those (--size, "
                             f"--fps) or force it (--force, force=True) to condition on the nearest")
        stride = self.video_tokenizer.config.spatial_stride
        warnings.warn(f"{what} never trained: conditioning on the nearest trained size "
                      f"{format_grid((grid[0] * stride, grid[1] * stride))} at {rate:g} fps", stacklevel=3)
        return grid, rate

    # --- generation ---
    def latent_grid(self, frames: int, size: tuple[int, int]) -> tuple[int, int, int]:
        """(t, h, w) for at least `frames` frames at `size` (H, W); a clear error for sizes the strides refuse."""
        if frames < 1:
            raise ValueError(f"number of frames must be ≥ 1, got {frames}")
        stride = self.video_tokenizer.config.temporal_stride
        rounded = 1 + -(-(frames - 1) // stride) * stride
        return self.video_tokenizer.latent_shape(rounded, *size)

    @property
    def window(self) -> int:
        """Latent frames the sampler keeps: `pipeline.json`'s window, or those of the training clip length."""
        return self.info.window or self.latent_grid(self.info.frames, tuple(self.info.size))[0]

    def prefixes(self, prompts: list[str | None], grid: tuple[int, int], fps: float) -> torch.Tensor:
        """Caption prefixes (B, P) of the prompts (None: the null caption, no conditioning) for a trained latent
        grid (h, w) and rate."""
        vocab = self.generator.vocab
        return torch.stack([vocab.prefix(None if prompt is None else self.text.encode(prompt), grid, fps)
                            for prompt in prompts])

    def _schedule(self, prompt: Prompt | None, frames: int, continuation: bool, condition: tuple[tuple[int, int],
                  float], copies: int = 1) -> Schedule:
        """(latent frame, caption prefixes) of a prompt, a list of prompts or a list of `PromptChange` at a trained
        (grid, rate) `condition`; each video `copies` times (samples of one prompt side by side)."""
        def prefixes(prompts: list[str | None]) -> torch.Tensor:
            return self.prefixes(prompts, *condition).repeat_interleave(copies, dim=0)

        if isinstance(prompt, list) and prompt and isinstance(prompt[0], PromptChange):
            changes = check_schedule(prompt, frames)
            stride = self.video_tokenizer.config.temporal_stride
            starts = [latent_start(change.at, stride, continuation) for change in changes]
            return [(start, prefixes([change.prompt])) for start, change in zip(starts, changes)]
        return [(0, prefixes([prompt] if prompt is None or isinstance(prompt, str) else list(prompt)))]

    @torch.no_grad()
    def _stream(self, schedule: Schedule, grid: tuple[int, int, int], frames: int, sampling: SamplingConfig | None,
                seed: int, window: int | None, context: torch.Tensor | None = None) -> Iterator[np.ndarray]:
        """Sample latent frames and decode them a tokenizer chunk at a time through its causal cache: uint8 chunks
        (B, T_i, H, W, 3), `frames` frames in all. With `context` codes the decoder first runs over them (their
        pixels are not yielded), so the continuation joins them."""
        device = self.generator.head.weight.device
        tokenizer_device = next(self.video_tokenizer.parameters()).device
        rng = torch.Generator(device=device).manual_seed(seed)
        latents = sample_frames(self.generator, schedule, grid, sampling or SamplingConfig(), rng,
                                window or self.window, context)
        cache, left = ConvCache(), frames
        if context is not None:
            self.video_tokenizer.decode_chunk(context.to(tokenizer_device), cache)
        for codes in chunked(latents, self.video_tokenizer.config.chunk_latent_frames):
            video = self.video_tokenizer.decode_chunk(torch.stack(codes, dim=1).to(tokenizer_device), cache)
            chunk = np.stack([to_uint8(v) for v in video])[:, :left]  # (B, T_i, H, W, 3)
            left -= chunk.shape[1]
            yield chunk

    def generate(self, prompt: Prompt, frames: int | None = None, size: tuple[int, int] | None = None,
                 sampling: SamplingConfig | None = None, seed: int = 0, window: int | None = None,
                 num_samples: int = 1, fps: float | None = None, force: bool = False) -> Iterator[np.ndarray]:
        """Videos of any length as uint8 chunks (B, T_i, H, W, 3), a tokenizer chunk at a time, in memory bounded by
        the window (latent frames, default `self.window`). `prompt`: one, a list (a batch), or a schedule of
        `PromptChange`s (one video whose prompt changes); `num_samples` videos of each, side by side. `size` (H, W)
        and `fps` (default: the pipeline's) must be trained ones unless `force` (see `conditions`). The same
        seed gives the same videos."""
        frames, size = frames or self.info.frames, tuple(size or self.info.size)
        condition = self.condition_for(size, fps or self.info.fps, force)
        grid = self.latent_grid(frames, size)
        schedule = self._schedule(prompt, frames, False, condition, copies=num_samples)
        return self._stream(schedule, grid, frames, sampling, seed, window)

    def encode_context(self, video: np.ndarray, context_frames: int | None = None) -> torch.Tensor:
        """Codes (1, c, h, w) of the last frames of a uint8 video (T, H, W, 3) at its own size: the
        `context_frames` last ones (default: the window less one latent frame), cut to 1 + s·k frames."""
        if len(video) == 0:
            raise ValueError("the video to extend has no frames")
        stride = self.video_tokenizer.config.temporal_stride
        wanted = context_frames or self.video_tokenizer.num_frames(self.window - 1)
        usable = 1 + (min(wanted, len(video)) - 1) // stride * stride
        device = next(self.video_tokenizer.parameters()).device
        return self.video_tokenizer.encode(to_pixels(video[-usable:], device))

    def extend(self, video: np.ndarray, prompt: Prompt | None = None, frames: int | None = None,
               context_frames: int | None = None, sampling: SamplingConfig | None = None, seed: int = 0,
               window: int | None = None, num_samples: int = 1, fps: float | None = None,
               size: tuple[int, int] | None = None, force: bool = False) -> Iterator[np.ndarray]:
        """Go on from a uint8 video (T, H, W, 3) at `fps` (default: the pipeline's): its last frames are the
        context; yields the `frames` new frames as uint8 chunks (num_samples, T_i, H, W, 3). The video keeps its
        size (or is resized and cropped to `size` first); size and rate go through the check of `generate`.
        `prompt` None continues without a caption."""
        frames = frames or self.info.frames
        if len(video) and size is not None and tuple(size) != video.shape[1:3]:
            video = resize_and_crop(video, tuple(size))
        condition = self.condition_for(tuple(video.shape[1:3]), fps or self.info.fps, force) if len(video) else None
        context = self.encode_context(video, context_frames).repeat(num_samples, 1, 1, 1)
        stride = self.video_tokenizer.config.temporal_stride
        grid = (-(-frames // stride), *context.shape[2:])
        schedule = self._schedule(prompt, frames, True, condition, copies=num_samples)
        return self._stream(schedule, grid, frames, sampling, seed, window, context)

    def __call__(self, prompt: str | list[str], frames: int | None = None, size: tuple[int, int] | None = None,
                 sampling: SamplingConfig | None = None, seed: int = 0, fps: float | None = None,
                 force: bool = False) -> np.ndarray:
        """Videos for one prompt or a list: uint8 (B, T, H, W, 3); the same seed gives the same videos."""
        return np.concatenate(list(self.generate(prompt, frames, size, sampling, seed, fps=fps, force=force)),
                              axis=1)

    def write(self, prompt: Prompt, path: str | Path, frames: int | None = None, size: tuple[int, int] | None = None,
              fps: float | None = None, sampling: SamplingConfig | None = None, seed: int = 0,
              force: bool = False, overwrite: bool = False) -> Path:
        """Generate one video at `fps` and stream it to `path` (format by suffix: .mp4, .gif, .webm, .png for one
        frame, or a new PNG folder); an existing output is refused before sampling unless `overwrite`."""
        with VideoWriter(path, fps or self.info.fps, overwrite=overwrite) as writer:
            for chunk in self.generate(prompt, frames, size, sampling, seed, fps=fps, force=force):
                writer.write(chunk[0])
        return Path(path)


def read_info(path: Path) -> PipelineInfo:
    """The `PipelineInfo` of a `pipeline.json`; a damaged or incomplete file, or another format version, is a
    one-line ValueError naming it."""
    raw = read_json(path, _REPAIR)
    if raw.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: pipeline format {raw.get('format_version')} is not supported (expected "
                         f"{FORMAT_VERSION}); {_REPAIR}")
    missing = [key for key in ("fps", "size", "frames") if key not in raw]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}: the file is incomplete or damaged; {_REPAIR}")
    fps, size, frames, window = (raw.get(key) for key in ("fps", "size", "frames", "window"))
    try:
        height, width = (int(side) for side in size)
        return PipelineInfo(fps=float(fps), size=(height, width), frames=int(frames),
                            window=None if window is None else int(window))
    except (TypeError, ValueError):  # a size that is not two numbers, a number that is not one
        raise ValueError(f"{path}: expected fps (a number), size ([H, W]), frames and window (whole numbers), got "
                         f"fps={fps!r}, size={size!r}, frames={frames!r}, window={window!r}: the file is damaged; "
                         f"{_REPAIR}") from None


def chunked(items: Iterable[torch.Tensor], size: int) -> Iterator[list[torch.Tensor]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch: list[torch.Tensor] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
