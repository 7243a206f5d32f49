"""`TextToVideo`: prompt → caption ids → sampled codes → video tokenizer → uint8 frames → video files.

The one module that joins the video tokenizer and the generator. A pipeline directory holds
`video_tokenizer/`, `generator/`, `text_tokenizer/` (each its own `save_pretrained` output) and `pipeline.json`
(format version, default frame rate, size, length and sampling window); for a generator that reads a frozen text
encoder (text_encoder.py), also `text_encoder/`, a copy of it, which loading prefers to the directory the generator's
config names (the pipeline is self-contained). Such a pipeline turns prompts into the encoder's states once per
prompt (`conditions`), and its caption tokenizer is unused. Frame counts are rounded up to what the
tokenizer's temporal stride allows (1 + s·k) and the decoded video is trimmed back; every such conversion (frames ↔
latent frames, frame sizes ↔ latent grids) is asked of the video tokenizer, never recomputed here.

Options: every generating call (`generate`, `extend`, `__call__`, `write`, `generate_files`, `extend_file`) takes one
`GenerationOptions` (frames, size, fps, force, sampling, seed, window, num_samples) and/or keyword overrides of its
fields (`generate(prompt, frames=33, seed=1)`); unset fields take the pipeline's defaults (`resolve`).

Sizes and frame rates: the generator is conditioned on the latent grid and the rate (size and fps ids of its
prefix, `vocab.py`), and knows only those it was trained on. `generate` and `extend` check what is asked for
(`condition_for`): an untrained size or rate is a ValueError naming the trained ones; with `force` the video keeps
the size and rate asked for and the prefix names the nearest trained ones (a warning says which).

Videos of any length: the sampler rolls a window of latent frames (`generate`), and the tokenizer decodes its
output a chunk at a time through its causal cache, so memory does not grow with the length; `extend` goes on from
the last frames of a given video, and a schedule of `PromptChange`s switches prompts along the way. Files stream
the same way (`write_videos`: one writer per video, a preview contact sheet keeps only the frames it shows);
`extend_file` also reads its input a chunk at a time, keeping only the last frames the context needs.
"""
from __future__ import annotations

import warnings
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch

from t2v.generator.layout import ENCODER_PART, PARTS, PIPELINE_FILE, check_pipeline_dir
from t2v.generator.model import VideoGenerator, read_json
from t2v.generator.sample import FrameDecoder, Prefixes, SamplingConfig, Schedule, frame_decoder, sample_frames
from t2v.generator.prompts import PromptChange, check_schedule
from t2v.generator.text import TextTokenizer
from t2v.generator.text_encoder import TextEncoder
from t2v.generator.vocab import format_grid, format_rates
from t2v.core import hub
from t2v.core.atomic import atomic_directory
from t2v.core.config_io import write_config
from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import to_pixels, to_uint8
from t2v.tokenizer.video_io import (VideoWriter, contact_sheet, frame_picks, iter_video, probe, resize_and_crop,
                                    write_image)

FORMAT_VERSION = 1
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


@dataclass
class GenerationOptions:
    """How videos are generated; a None field takes the pipeline's default (`TextToVideo.resolve`)."""

    frames: int | None = None  # frames of each video, any number (None: pipeline.json's clip length)
    size: tuple[int, int] | None = None  # (H, W), trained unless `force` (None: the pipeline's; extend: the video's)
    fps: float | None = None  # rate the prefix names and files play at (None: the pipeline's; extend_file: the input's)
    force: bool = False  # an untrained size or rate conditions on the nearest trained one (with a warning)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # None: the defaults
    seed: int = 0  # the same seed gives the same videos
    window: int | None = None  # latent frames the sampler keeps (None: `TextToVideo.window`)
    num_samples: int = 1  # videos of each prompt, side by side
    decode_every: int | None = None  # latent frames decoded (and yielded) at a time (None: the tokenizer's chunk;
    # 1: pixels as soon as each latent frame is sampled, as a page streaming frames wants; the same pixels)

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"number of frames must be ≥ 1, got {self.frames}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.window is not None and self.window < 2:
            raise ValueError(f"the window must hold at least 2 latent frames, got {self.window}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be ≥ 1, got {self.num_samples}")
        if self.decode_every is not None and self.decode_every < 1:
            raise ValueError(f"decode_every must be ≥ 1 latent frame, got {self.decode_every}")
        if self.size is not None:
            self.size = tuple(self.size)
        if self.sampling is None:
            self.sampling = SamplingConfig()


@dataclass
class WrittenFiles:
    """The files `write_videos` wrote: one video per sample, and the preview contact sheet if one was asked for."""

    videos: list[Path]
    preview: Path | None = None


class TextToVideo:
    """A video tokenizer, a generator and a caption tokenizer (or the generator's frozen text encoder) that together
    turn prompts into videos."""

    def __init__(self, video_tokenizer: VideoTokenizer, generator: VideoGenerator, text: TextTokenizer,
                 info: PipelineInfo | None = None, text_encoder: TextEncoder | None = None) -> None:
        if video_tokenizer.codebook_size != generator.config.codebook_size:
            raise ValueError(f"video tokenizer has {video_tokenizer.codebook_size} codes but the generator predicts "
                             f"{generator.config.codebook_size}: they were not trained together")
        if text.size != generator.config.text_size:
            raise ValueError(f"text tokenizer has {text.size} pieces but the generator reads "
                             f"{generator.config.text_size}: they were not trained together")
        self.video_tokenizer = video_tokenizer.eval()
        self.generator = generator.eval()
        self.text = text
        self.text_encoder = self._encoder(generator, text_encoder)
        self.info = info or PipelineInfo()
        self.condition_for(tuple(self.info.size), self.info.fps)  # the defaults must be trained ones

    @staticmethod
    def _encoder(generator: VideoGenerator, encoder: TextEncoder | None) -> TextEncoder | None:
        """The text encoder the generator reads: `encoder` (left where it is: `.to` moves it with the models), or the
        one in the directory its config names."""
        config = generator.config
        if not config.text_encoder:
            if encoder is not None:
                raise ValueError("a text encoder was given, but the generator reads the caption tokenizer's pieces "
                                 "(its config names no text_encoder)")
            return None
        encoder = encoder or TextEncoder.load(config.text_encoder, config.max_text_len)
        if encoder.width != config.text_encoder_width or encoder.tokens.max_len != config.max_text_len:
            raise ValueError(f"the text encoder of {encoder.directory} gives {encoder.width}-wide states for "
                             f"{encoder.tokens.max_len} slots, the generator reads {config.text_encoder_width}-wide "
                             f"ones for {config.max_text_len}: they were not trained together")
        return encoder

    @classmethod
    def assemble(cls, tokenizer_dir: str | Path, generator: VideoGenerator, text: TextTokenizer, fps: float,
                 grid: tuple[int, int, int], text_encoder: TextEncoder | None = None) -> "TextToVideo":
        """A pipeline around a trained tokenizer directory and an in-memory generator (and its text encoder, if
        any); its default size and length are those of a training clip's latent `grid` (t, h, w)."""
        video_tokenizer = VideoTokenizer.from_pretrained(tokenizer_dir)
        t, h, w = grid
        info = PipelineInfo(fps=fps, size=video_tokenizer.frame_size((h, w)), frames=video_tokenizer.num_frames(t))
        return cls(video_tokenizer, generator, text, info, text_encoder)

    # --- device and dtype ---
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "TextToVideo":
        """Move the models (and the text encoder) to `device` and/or cast their weights to `dtype` (as a diffusers
        pipeline's `.to`); returns the pipeline. The tokenizer's quantizer and the generator's rotary frequencies stay
        fp32."""
        self.video_tokenizer.to(device=device, dtype=dtype)
        self.generator.to(device=device, dtype=dtype)
        if self.text_encoder is not None:
            self.text_encoder.to(device, dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.generator.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.generator.head.weight.dtype

    # --- saving and loading ---
    provenance: hub.Provenance | None = None  # the pipeline's own scores (a recipe's evaluation), for its card

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None, *,
                        model_card: bool | None = None, scores: Mapping[str, Any] | str | Path | None = None) -> Path:
        """Write the pipeline directory (built under a temporary name, then renamed into place); `dtype` stores the
        models' parameters in it (e.g. torch.float16: half the size; loading casts back). Model cards (`README.md`
        of the pipeline and of each model, core/hub.py) are written when `model_card` is True, or by default when
        something beyond the configs is known: a model's training, or scores (`scores`: a recipe's eval.json or
        its "scores" mapping; else those of the card the pipeline was loaded with)."""
        known = (self.provenance or hub.Provenance()).with_scores(scores) if scores is not None else self.provenance
        card = hub.wants_card(model_card, known, self.video_tokenizer.provenance, self.generator.provenance)
        with atomic_directory(directory) as tmp:
            self.video_tokenizer.save_pretrained(tmp / "video_tokenizer", dtype, model_card=card)
            self.generator.save_pretrained(tmp / "generator", dtype, model_card=card)
            self.text.save(tmp / "text_tokenizer")
            if self.text_encoder is not None:
                self.text_encoder.save(tmp / ENCODER_PART)
            write_config(tmp / PIPELINE_FILE, self.info)
            hub.write_card(tmp, self.model_card(known) if card else None)
        return Path(directory)

    def model_card(self, known: hub.Provenance | None = None) -> str:
        """The pipeline's model card (README.md): its parts, how each was trained and scored, its defaults, and
        the recipe's evaluation of the whole (`known.scores`) where given."""
        parts = {"video tokenizer": self.video_tokenizer, "generator": self.generator}
        facts = {"trained sizes (WxH)": ", ".join(map(format_grid, self.trained_sizes)),
                 "trained rates": format_rates(self.trained_rates), "video codes": self.video_tokenizer.codebook_size,
                 **{f"{name} parameters": hub.parameter_count(sum(p.numel() for p in part.parameters()))
                    for name, part in parts.items()},
                 "default size (WxH)": format_grid(self.info.size), "default frames": self.info.frames,
                 "default fps": self.info.fps, "default window (latent frames)": self.info.window or "the clip's",
                 "pipeline.json format": self.info.format_version}
        usage = ("from t2v.generator.pipeline import TextToVideo\n\n"
                 f"pipeline = TextToVideo.from_pretrained(\"{hub.REPO_PLACEHOLDER}\")\n"
                 "pipeline.write(\"a red circle moving left slowly\", \"video.mp4\", frames=33, seed=0)")
        summary = ("A text-to-video pipeline of t2v: a caption tokenizer, a decoder-only transformer that writes a "
                   "video's codes a latent frame after another, and the causal 3D VQ-GAN that decodes them; videos of "
                   "any length stream in bounded memory. Each model has its own card in its folder.")
        training = "\n\n".join(f"### {name.capitalize()} ({folder}/)\n\n"
                                f"{hub.training_text(part.provenance or hub.Provenance())}"
                                for (name, part), folder in zip(parts.items(), PARTS))
        scores = "\n\n".join(
            [f"### The pipeline (the recipe's evaluation)\n\n{hub.scores_text(known.scores if known else {})}"]
            + [f"### {name.capitalize()}\n\n{hub.scores_text(part.provenance.scores if part.provenance else {})}"
               for name, part in parts.items()])
        return hub.model_card("pipeline", "t2v text-to-video pipeline", summary, usage,
                              ["text-to-video", "video-generation", "autoregressive"], facts, None, known,
                              pipeline_tag="text-to-video", training=training, scores=scores)

    def push_to_hub(self, repo_id: str, dtype: torch.dtype | None = None,
                    scores: Mapping[str, Any] | str | Path | None = None, **options: Any) -> str:
        """Upload the saved pipeline (with its cards) to the hub repository `repo_id` (created if missing); the
        commit's URL. `options`: `huggingface_hub.ModelHubMixin.push_to_hub`'s (commit_message, private, token,
        branch, create_pr)."""
        return hub.push(lambda folder: self.save_pretrained(folder, dtype, model_card=True, scores=scores), repo_id,
                        **options)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **hub_options: Any) -> "TextToVideo":
        """Load a pipeline directory, or one published on the hub (`user/repo`: downloaded into the hub's cache;
        `hub_options`: revision, cache_dir, token, force_download, local_files_only)."""
        directory = hub.pretrained_dir(directory, "pipeline", **hub_options)
        check_pipeline_dir(directory)
        info = read_info(directory / PIPELINE_FILE)
        generator = VideoGenerator.from_pretrained(directory / "generator")
        if generator.config.text_encoder and (directory / ENCODER_PART).is_dir():  # its own copy, not the recorded one
            generator.config.text_encoder = str((directory / ENCODER_PART).resolve())
        pipeline = cls(VideoTokenizer.from_pretrained(directory / "video_tokenizer"), generator,
                       TextTokenizer.load(directory / "text_tokenizer"), info)
        pipeline.provenance = hub.read_provenance(directory, "pipeline")
        return pipeline

    # --- sizes and rates ---
    @property
    def trained_sizes(self) -> list[tuple[int, int]]:
        """The frame sizes (H, W) the generator was trained on (its latent grids × the tokenizer's stride)."""
        return [self.video_tokenizer.frame_size(grid) for grid in self.generator.vocab.sizes]

    @property
    def trained_rates(self) -> list[float]:
        return list(self.generator.vocab.rates)

    def condition_for(self, size: tuple[int, int], fps: float, force: bool = False) -> tuple[tuple[int, int], float]:
        """The trained latent grid (h, w) and rate the prefix names for frames of `size` (H, W) at `fps`.

        One never trained is refused with a one-line ValueError naming the trained ones, unless `force`: then the
        nearest trained one is named instead (aspect ratio first, then area; rates by ratio), with a warning.
        """
        vocab = self.generator.vocab
        h, w = self.video_tokenizer.latent_grid(size)  # a clear error for sizes the strides refuse
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
        warnings.warn(f"{what} never trained: conditioning on the nearest trained size "
                      f"{format_grid(self.video_tokenizer.frame_size(grid))} at {rate:g} fps", stacklevel=3)
        return grid, rate

    # --- options ---
    @property
    def window(self) -> int:
        """Latent frames the sampler keeps: `pipeline.json`'s window, or those of the training clip length."""
        return self.info.window or self.video_tokenizer.latent_frames(self.info.frames)

    def resolve(self, options: GenerationOptions | None = None, **overrides: Any) -> GenerationOptions:
        """`options` (default: all defaults) with `overrides` of its fields, and the pipeline's defaults for those
        still unset: frames, size and fps of `pipeline.json`, and `window`."""
        options = replace(options or GenerationOptions(), **overrides)
        return replace(options, frames=options.frames or self.info.frames, size=options.size or tuple(self.info.size),
                       fps=options.fps or self.info.fps, window=options.window or self.window)

    def context_length(self, context_frames: int | None = None) -> int:
        """Frames at the end of a video that `extend` takes as context: `context_frames`, or by default the window
        less one latent frame (cut to 1 + s·k frames when encoded, `encode_context`)."""
        return context_frames or self.video_tokenizer.num_frames(self.window - 1)

    # --- generation ---
    def prefixes(self, prompts: list[str | None], grid: tuple[int, int], fps: float) -> torch.Tensor:
        """Caption prefixes (B, P) of the prompts (None: the null caption, no conditioning) for a trained latent
        grid (h, w) and rate; with a text encoder, their caption slots are PAD (the states fill them: `conditions`)."""
        vocab = self.generator.vocab
        encoded = self.text_encoder is not None
        return torch.stack([vocab.prefix(None if prompt is None else [] if encoded else self.text.encode(prompt),
                                         grid, fps) for prompt in prompts])

    def conditions(self, prompts: list[str | None], grid: tuple[int, int], fps: float) -> Prefixes:
        """`prefixes`, with the text encoder's states of each prompt (computed here, once) when there is one."""
        ids = self.prefixes(prompts, grid, fps)
        if self.text_encoder is None:
            return Prefixes(ids)
        return Prefixes(ids, *self.text_encoder.encode(prompts))

    def _schedule(self, prompt: Prompt | None, frames: int, continuation: bool, condition: tuple[tuple[int, int],
                  float], copies: int = 1) -> Schedule:
        """(latent frame, caption prefixes) of a prompt, a list of prompts or a list of `PromptChange` at a trained
        (grid, rate) `condition`; each video `copies` times (samples of one prompt side by side). A change applies
        from the first latent frame whose pixels start at or after its frame."""
        def prefixes(prompts: list[str | None]) -> Prefixes:
            return self.conditions(prompts, *condition).map(lambda tensor: tensor.repeat_interleave(copies, dim=0))

        if isinstance(prompt, list) and prompt and isinstance(prompt[0], PromptChange):
            changes = check_schedule(prompt, frames)
            starts = [self.video_tokenizer.latent_frames(change.at, continued=continuation) for change in changes]
            return [(start, prefixes([change.prompt])) for start, change in zip(starts, changes)]
        return [(0, prefixes([prompt] if prompt is None or isinstance(prompt, str) else list(prompt)))]

    @torch.no_grad()
    def _stream(self, schedule: Schedule, grid: tuple[int, int, int], options: GenerationOptions,
                strategy: FrameDecoder, context: torch.Tensor | None = None) -> Iterator[np.ndarray]:
        """Sample latent frames and decode them `options.decode_every` at a time (default: a tokenizer chunk) through
        its causal cache: uint8 chunks (B, T_i, H, W, 3), `options.frames` frames in all (`options` resolved). With
        `context` codes the decoder first runs over them (their pixels are not yielded), so the continuation joins
        them."""
        device = self.device
        tokenizer_device = self.video_tokenizer.device
        rng = torch.Generator(device=device).manual_seed(options.seed)
        latents = sample_frames(self.generator, schedule, grid, options.sampling, rng, options.window, context,
                                strategy)
        cache, left = ConvCache(), options.frames
        if context is not None:
            self.video_tokenizer.decode_chunk(context.to(tokenizer_device), cache)
        for codes in chunked(latents, options.decode_every or self.video_tokenizer.config.chunk_latent_frames):
            video = self.video_tokenizer.decode_chunk(torch.stack(codes, dim=1).to(tokenizer_device), cache)
            chunk = np.stack([to_uint8(v) for v in video])[:, :left]  # (B, T_i, H, W, 3)
            left -= chunk.shape[1]
            yield chunk

    def generate(self, prompt: Prompt, options: GenerationOptions | None = None,
                 **overrides: Any) -> Iterator[np.ndarray]:
        """Videos of any length as uint8 chunks (B, T_i, H, W, 3), a tokenizer chunk at a time, in memory bounded by
        the window. `prompt`: one, a list (a batch), or a schedule of `PromptChange`s (one video whose prompt
        changes); `options` (and `overrides` of its fields, see `resolve`): `num_samples` videos of each prompt side
        by side; size and fps must be trained ones unless `force` (`condition_for`). The same seed gives the same
        videos. Prompts and sizes are checked here, before the first chunk is asked for."""
        options = self.resolve(options, **overrides)
        condition = self.condition_for(options.size, options.fps, options.force)
        grid = (self.video_tokenizer.latent_frames(options.frames), *self.video_tokenizer.latent_grid(options.size))
        schedule = self._schedule(prompt, options.frames, False, condition, copies=options.num_samples)
        strategy = frame_decoder(self.generator, options.sampling.steps, grid[1:])  # bad --steps: refused here
        return self._stream(schedule, grid, options, strategy)

    def encode_context(self, video: np.ndarray, context_frames: int | None = None) -> torch.Tensor:
        """Codes (1, c, h, w) of the last frames of a uint8 video (T, H, W, 3) at its own size: the
        `context_frames` last ones (default: `context_length`), cut to 1 + s·k frames."""
        if len(video) == 0:
            raise ValueError("the video to extend has no frames")
        usable = self.video_tokenizer.encodable_frames(min(self.context_length(context_frames), len(video)))
        return self.video_tokenizer.encode(to_pixels(video[-usable:], self.video_tokenizer.device))

    def extend(self, video: np.ndarray, prompt: Prompt | None = None, options: GenerationOptions | None = None, *,
               context_frames: int | None = None, **overrides: Any) -> Iterator[np.ndarray]:
        """Go on from a uint8 video (T, H, W, 3): its last `context_frames` frames (`encode_context`) are the
        context; yields the `options.frames` new frames as uint8 chunks (num_samples, T_i, H, W, 3). The video keeps
        its size (or is resized and cropped to `options.size` first); its size and `options.fps` go through the
        check of `generate`. `prompt` None continues without a caption."""
        options = replace(options or GenerationOptions(), **overrides)
        if len(video) and options.size is not None and options.size != video.shape[1:3]:
            video = resize_and_crop(video, options.size)
        options = self.resolve(options, size=tuple(video.shape[1:3]) if len(video) else options.size)
        condition = self.condition_for(options.size, options.fps, options.force) if len(video) else None
        return self._continue(video, prompt, options, condition, context_frames)

    def _continue(self, video: np.ndarray, prompt: Prompt | None, options: GenerationOptions,
                  condition: tuple[tuple[int, int], float] | None, context_frames: int | None) -> Iterator[np.ndarray]:
        """`extend` once its video is at its size and its `condition` (grid, rate) is known; `options` resolved."""
        context = self.encode_context(video, context_frames).repeat(options.num_samples, 1, 1, 1)
        grid = (self.video_tokenizer.latent_frames(options.frames, continued=True), *context.shape[2:])
        strategy = frame_decoder(self.generator, options.sampling.steps, grid[1:])  # bad --steps: refused here
        schedule = self._schedule(prompt, options.frames, True, condition, copies=options.num_samples)
        return self._stream(schedule, grid, options, strategy, context)

    def __call__(self, prompt: str | list[str], options: GenerationOptions | None = None,
                 **overrides: Any) -> np.ndarray:
        """Videos for one prompt or a list: uint8 (B, T, H, W, 3); the same seed gives the same videos."""
        return np.concatenate(list(self.generate(prompt, options, **overrides)), axis=1)

    # --- files ---
    def generate_files(self, prompt: Prompt, paths: Sequence[str | Path], options: GenerationOptions | None = None,
                       *, preview: str | Path | None = None, overwrite: bool = False,
                       progress: Callable[[int], None] | None = None, **overrides: Any) -> WrittenFiles:
        """Generate the videos of `prompt` (`generate`) and stream video i to `paths[i]` at `options.fps` as its
        chunks are decoded (format by suffix, `write_videos`); `preview`, a contact sheet of a few frames of each;
        `progress(n)` hears each chunk's n frames of each video as they are written (`write_videos`).
        Outputs are checked (`prompt`, size and rate too) before sampling; an existing one is refused unless
        `overwrite`."""
        options = self.resolve(options, **overrides)
        return write_videos(self.generate(prompt, options), paths, options.fps, options.frames, preview,
                            overwrite=overwrite, progress=progress)

    def write(self, prompt: Prompt, path: str | Path, options: GenerationOptions | None = None, *,
              overwrite: bool = False, **overrides: Any) -> Path:
        """Generate one video (the first, when `prompt` makes several) and stream it to `path` (.mp4, .gif, .webm,
        .png for one frame, or a new PNG folder); an existing output is refused before sampling unless
        `overwrite`."""
        return self.generate_files(prompt, [path], options, overwrite=overwrite, **overrides).videos[0]

    def extend_file(self, in_video: str | Path, paths: Sequence[str | Path], prompt: Prompt | None = None,
                    options: GenerationOptions | None = None, *, context_frames: int | None = None,
                    only_new: bool = False, preview: str | Path | None = None, overwrite: bool = False,
                    on_start: Callable[[GenerationOptions, int], None] | None = None,
                    progress: Callable[[int], None] | None = None, **overrides: Any) -> WrittenFiles:
        """Continue the video file `in_video` into `paths` (one per sample): each holds the input (unless
        `only_new`), then the `options.frames` new frames (`extension`); `preview`, a contact sheet of the new
        frames; `progress(n)` hears each chunk's n new frames as they are written (`write_videos`). Input and
        outputs stream, so memory is bounded by the window, not by either video's length."""
        options, before, after = self.extension(in_video, prompt, options, context_frames=context_frames,
                                                only_new=only_new, on_start=on_start, **overrides)
        return write_videos(after, paths, options.fps, options.frames, preview, before=before, overwrite=overwrite,
                            progress=progress)

    def extension(self, in_video: str | Path, prompt: Prompt | None = None, options: GenerationOptions | None = None,
                  *, context_frames: int | None = None, only_new: bool = False,
                  on_start: Callable[[GenerationOptions, int], None] | None = None,
                  **overrides: Any) -> tuple[GenerationOptions, Iterator[np.ndarray], Iterator[np.ndarray]]:
        """The continuation of the video file `in_video` as streams: (the resolved options, the input's frames
        (none if `only_new`), the new frames as uint8 chunks (B, T_i, H, W, 3)); the second must be consumed first.

        1. Size and rate: the input's own, or `options.size` (it is resized and cropped) and `options.fps` (it is
           resampled); they go through the check of `generate` (`condition_for`) here, before any frame is read.
        2. The input streams, keeping only its last `context_length(context_frames)` frames.
        3. Once it is read, `on_start(options, context)` (when given) hears the resolved options and the number of
           context frames; then those frames are encoded as the context and the continuation follows them.
        """
        asked = replace(options or GenerationOptions(), **overrides)
        info = probe(in_video)
        options = self.resolve(asked, size=asked.size or (info.height, info.width), fps=asked.fps or info.fps)
        condition = self.condition_for(options.size, options.fps, options.force)
        tail: deque[np.ndarray] = deque(maxlen=self.context_length(context_frames))

        def original() -> Iterator[np.ndarray]:
            for chunk in iter_video(in_video, fps=asked.fps):  # fps None: the file's own frames
                chunk = resize_and_crop(chunk, options.size)
                tail.extend(chunk)
                if not only_new:
                    yield chunk

        def continuation() -> Iterator[np.ndarray]:
            if on_start is not None:
                on_start(options, len(tail))
            video = np.stack(tail) if tail else np.zeros((0, *options.size, 3), np.uint8)
            yield from self._continue(video, prompt, options, condition, len(tail))

        return options, original(), continuation()


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


def write_videos(chunks: Iterable[np.ndarray], paths: Sequence[str | Path], fps: float, frames: int,
                 preview: str | Path | None = None, before: Iterable[np.ndarray] = (),
                 overwrite: bool = False, progress: Callable[[int], None] | None = None) -> WrittenFiles:
    """Stream video i of each uint8 chunk (B, T_i, H, W, 3) to `paths[i]` at `fps` as the chunks come (the `before`
    frames (T, H, W, 3) first, in every file). With `preview`, also a contact sheet (a row per video) of up to 9 of
    the `frames` frames of the chunks, keeping only those. Existing outputs are replaced only with `overwrite`.
    `progress(T_i)` after each chunk is written."""
    picks, kept, seen = set(frame_picks(frames).tolist()), [], 0
    with ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(path, fps, overwrite=overwrite)) for path in paths]
        for part in before:
            for writer in writers:
                writer.write(part)
        for chunk in chunks:
            for writer, video in zip(writers, chunk):
                writer.write(video)
            if preview is not None:
                kept += [chunk[:, i] for i in range(chunk.shape[1]) if seen + i in picks]
            seen += chunk.shape[1]
            if progress is not None:
                progress(chunk.shape[1])
    written = WrittenFiles([Path(path) for path in paths])
    if preview is not None and kept:
        write_image(preview, contact_sheet(np.stack(kept, axis=1), max_columns=len(kept)), overwrite=overwrite)
        written.preview = Path(preview)
    return written
