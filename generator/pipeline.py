"""`TextToVideo`: prompt → caption ids → sampled codes → video tokenizer → uint8 frames (and a video file).

The one module that joins the video tokenizer and the generator. A pipeline directory holds
`video_tokenizer/`, `generator/`, `text_tokenizer/` (each its own `save_pretrained` output) and `pipeline.json`
(format version, default frame rate, size and length). Frame counts are rounded up to what the tokenizer's
temporal stride allows (1 + s·k) and the decoded video is trimmed back.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from t2v.generator.model import VideoGenerator
from t2v.generator.sample import SamplingConfig, sample_codes
from t2v.generator.text import TextTokenizer
from t2v.tokenizer.atomic import atomic_directory, atomic_write_text
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.streaming import to_uint8
from t2v.tokenizer.video_io import write_video

PIPELINE_FILE = "pipeline.json"
FORMAT_VERSION = 1
PARTS = ("video_tokenizer", "generator", "text_tokenizer")


@dataclass
class PipelineInfo:
    """What `pipeline.json` records: defaults for a call without options."""

    fps: float = 8.0
    size: tuple[int, int] = (64, 64)  # (H, W)
    frames: int = 17
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
        info = PipelineInfo(fps=float(raw["fps"]), size=tuple(raw["size"]), frames=int(raw["frames"]))
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

    def prefixes(self, prompts: list[str]) -> torch.Tensor:
        """Caption prefixes (B, P) of the prompts."""
        vocab = self.generator.vocab
        return torch.stack([vocab.prefix(self.text.encode(prompt)) for prompt in prompts])

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], frames: int | None = None, size: tuple[int, int] | None = None,
                 sampling: SamplingConfig | None = None, seed: int = 0) -> np.ndarray:
        """Videos for one prompt or a list: uint8 (B, T, H, W, 3); the same seed gives the same videos."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        frames = frames or self.info.frames
        grid = self.latent_grid(frames, size or tuple(self.info.size))
        device = self.generator.head.weight.device
        generator = torch.Generator(device=device).manual_seed(seed)
        codes = sample_codes(self.generator, self.prefixes(prompts), grid, sampling or SamplingConfig(), generator)
        video = self.video_tokenizer.decode(codes.to(next(self.video_tokenizer.parameters()).device))
        return np.stack([to_uint8(v) for v in video])[:, :frames]

    def write(self, prompt: str, path: str | Path, frames: int | None = None, size: tuple[int, int] | None = None,
              fps: float | None = None, sampling: SamplingConfig | None = None, seed: int = 0) -> Path:
        """Generate one video and write it to `path` (format by extension: .mp4, .gif, .webm or a PNG folder)."""
        video = self(prompt, frames, size, sampling, seed)[0]
        write_video(path, video, fps or self.info.fps)
        return Path(path)
