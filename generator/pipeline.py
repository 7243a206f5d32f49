"""`TextToVideo`: prompt → caption ids → sampled codes → video tokenizer → uint8 frames (and a video file).

The one module that joins the video tokenizer and the generator. A pipeline directory holds
`video_tokenizer/`, `generator/`, `text_tokenizer/` (each its own `save_pretrained` output) and `pipeline.json`
(format version, default frame rate, size, length and sampling window). Frame counts are rounded up to what the
tokenizer's temporal stride allows (1 + s·k) and the decoded video is trimmed back.

Videos of any length: the sampler rolls a window of latent frames (`generate`), and the tokenizer decodes its
output a chunk at a time through its causal cache, so memory does not grow with the length; `extend` goes on from
the last frames of a given video, and a schedule of `PromptChange`s switches prompts along the way.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
import torch

from t2v.generator.model import VideoGenerator
from t2v.generator.sample import SamplingConfig, Schedule, sample_frames
from t2v.generator.schedule import PromptChange, check_schedule, latent_start
from t2v.generator.text import TextTokenizer
from t2v.tokenizer.atomic import atomic_directory, atomic_write_text
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.streaming import to_pixels, to_uint8
from t2v.tokenizer.video_io import VideoWriter, resize_and_crop

PIPELINE_FILE = "pipeline.json"
FORMAT_VERSION = 1
PARTS = ("video_tokenizer", "generator", "text_tokenizer")
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
        raw = json.loads((directory / PIPELINE_FILE).read_text())
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory / PIPELINE_FILE}: pipeline format {raw.get('format_version')} is not "
                             f"supported (expected {FORMAT_VERSION})")
        info = PipelineInfo(fps=float(raw["fps"]), size=tuple(raw["size"]), frames=int(raw["frames"]),
                            window=raw.get("window"))
        return cls(VideoTokenizer.from_pretrained(directory / "video_tokenizer"),
                   VideoGenerator.from_pretrained(directory / "generator"),
                   TextTokenizer.load(directory / "text_tokenizer"), info)

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

    def prefixes(self, prompts: list[str | None]) -> torch.Tensor:
        """Caption prefixes (B, P) of the prompts (None: the null caption, no conditioning)."""
        vocab = self.generator.vocab
        return torch.stack([vocab.prefix(None if prompt is None else self.text.encode(prompt)) for prompt in prompts])

    def _schedule(self, prompt: Prompt | None, frames: int, continuation: bool, copies: int = 1) -> Schedule:
        """(latent frame, caption prefixes) of a prompt, a list of prompts or a list of `PromptChange`; each
        video `copies` times (samples of one prompt side by side)."""
        def prefixes(prompts: list[str | None]) -> torch.Tensor:
            return self.prefixes(prompts).repeat_interleave(copies, dim=0)

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
        generator = torch.Generator(device=device).manual_seed(seed)
        latents = sample_frames(self.generator, schedule, grid, sampling or SamplingConfig(), generator,
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
                 num_samples: int = 1) -> Iterator[np.ndarray]:
        """Videos of any length as uint8 chunks (B, T_i, H, W, 3), a tokenizer chunk at a time, in memory bounded by
        the window (latent frames, default `self.window`). `prompt`: one, a list (a batch), or a schedule of
        `PromptChange`s (one video whose prompt changes); `num_samples` videos of each, side by side. The same
        seed gives the same videos."""
        frames = frames or self.info.frames
        grid = self.latent_grid(frames, size or tuple(self.info.size))
        schedule = self._schedule(prompt, frames, continuation=False, copies=num_samples)
        return self._stream(schedule, grid, frames, sampling, seed, window)

    def encode_context(self, video: np.ndarray, context_frames: int | None = None) -> torch.Tensor:
        """Codes (1, c, h, w) of the last frames of a uint8 video (T, H, W, 3) at the pipeline's size: the
        `context_frames` last ones (default: the window less one latent frame), cut to 1 + s·k frames."""
        if len(video) == 0:
            raise ValueError("the video to extend has no frames")
        stride = self.video_tokenizer.config.temporal_stride
        wanted = context_frames or self.video_tokenizer.num_frames(self.window - 1)
        usable = 1 + (min(wanted, len(video)) - 1) // stride * stride
        frames = resize_and_crop(video[-usable:], tuple(self.info.size))
        return self.video_tokenizer.encode(to_pixels(frames, next(self.video_tokenizer.parameters()).device))

    def extend(self, video: np.ndarray, prompt: Prompt | None = None, frames: int | None = None,
               context_frames: int | None = None, sampling: SamplingConfig | None = None, seed: int = 0,
               window: int | None = None, num_samples: int = 1) -> Iterator[np.ndarray]:
        """Go on from a uint8 video (T, H, W, 3): its last frames are the context; yields the `frames` new frames
        as uint8 chunks (num_samples, T_i, H, W, 3). `prompt` None continues without a caption."""
        frames = frames or self.info.frames
        context = self.encode_context(video, context_frames).repeat(num_samples, 1, 1, 1)
        stride = self.video_tokenizer.config.temporal_stride
        grid = (-(-frames // stride), *context.shape[2:])
        schedule = self._schedule(prompt, frames, continuation=True, copies=num_samples)
        return self._stream(schedule, grid, frames, sampling, seed, window, context)

    def __call__(self, prompt: str | list[str], frames: int | None = None, size: tuple[int, int] | None = None,
                 sampling: SamplingConfig | None = None, seed: int = 0) -> np.ndarray:
        """Videos for one prompt or a list: uint8 (B, T, H, W, 3); the same seed gives the same videos."""
        return np.concatenate(list(self.generate(prompt, frames, size, sampling, seed)), axis=1)

    def write(self, prompt: Prompt, path: str | Path, frames: int | None = None, size: tuple[int, int] | None = None,
              fps: float | None = None, sampling: SamplingConfig | None = None, seed: int = 0) -> Path:
        """Generate one video and stream it to `path` (format by extension: .mp4, .gif, .webm or a PNG folder)."""
        with VideoWriter(path, fps or self.info.fps) as writer:
            for chunk in self.generate(prompt, frames, size, sampling, seed):
                writer.write(chunk[0])
        return Path(path)


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
