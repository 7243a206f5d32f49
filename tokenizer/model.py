"""`VideoTokenizer`: a causal 3D-conv VQ-GAN (encoder, quantizer, decoder) built from a `TokenizerConfig` (config.py).

Notable choices:
- T = 1 + s·k frames → t = 1 + k latent frames (s = temporal stride): the first frame is encoded alone, so an image
  is a one-frame video. Space is divided by the spatial stride; any H, W divisible by it work, non-square too.
  All of this stride arithmetic lives here, for other modules to ask: `latent_shape`, `latent_grid` / `frame_size`
  (sizes ↔ grids), `latent_frames` / `num_frames` (frames ↔ latent frames), `encodable_frames`.
- `encode_stream` / `decode_stream` run temporal chunks through an explicit `ConvCache`; `encode` / `decode` are
  those streams over the clip's chunks, so a clip of any length runs in memory bounded by the chunk size, and
  chunked results equal whole-clip results.
- Checkpoints are a directory with `config.json` + `model.safetensors`, each written atomically (temp + rename).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file
from torch import nn
from torch.utils.checkpoint import checkpoint

from t2v.core import hub
from t2v.core.atomic import atomic_file
from t2v.core.checkpoint import load_weights, weights_state
from t2v.core.config_io import from_dict, write_config
from t2v.tokenizer.config import TokenizerConfig
from t2v.tokenizer.layers import CausalConv3d, ConvCache, Downsample, ResBlock, Upsample, norm
from t2v.tokenizer.quantizer import Quantizer, QuantizerOutput, swap_codes


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, cache: ConvCache | None, checkpointing: bool) -> torch.Tensor:
    """`x` through `blocks` in turn; with `checkpointing`, a whole-clip forward that builds a graph keeps only each
    block's input and recomputes the block in the backward (non-reentrant, so DDP and autocast work as usual)."""
    for block in blocks:
        if checkpointing and cache is None and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x, cache)
    return x


class Encoder(nn.Module):
    """Pixels (B, 3, T, H, W) → continuous latent (B, d, t, h, w)."""

    def __init__(self, config: TokenizerConfig, latent_dim: int) -> None:
        super().__init__()
        widths = config.channels
        self.patch_size = config.patch_size
        self.conv_in = CausalConv3d(3 * self.patch_size**2, widths[0])
        self.blocks = nn.ModuleList()
        in_width = widths[0]
        temporal = config.temporal_levels()
        for level, width in enumerate(widths):
            for _ in range(config.num_res_blocks):
                self.blocks.append(ResBlock(in_width, width))
                in_width = width
            if level < config.num_downsamples:
                self.blocks.append(Downsample(width, temporal=temporal[level]))
        self.blocks.append(ResBlock(in_width, in_width))
        self.norm_out = norm(in_width)
        self.conv_out = CausalConv3d(in_width, latent_dim)
        self.checkpointing = False  # VideoTokenizer.set_gradient_checkpointing

    def forward(self, video: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        p = self.patch_size
        video = rearrange(video, "b c t (h p) (w q) -> b (c p q) t h w", p=p, q=p)  # (B, 3p², T, H/p, W/p)
        x = run_blocks(self.blocks, self.conv_in(video, cache), cache, self.checkpointing)
        return self.conv_out(F.silu(self.norm_out(x)), cache)


class Decoder(nn.Module):
    """Quantized latent (B, d, t, h, w) → pixels (B, 3, T, H, W)."""

    def __init__(self, config: TokenizerConfig, latent_dim: int) -> None:
        super().__init__()
        widths = config.channels[::-1]
        temporal = config.temporal_levels()[::-1]
        self.conv_in = CausalConv3d(latent_dim, widths[0])
        self.blocks = nn.ModuleList([ResBlock(widths[0], widths[0])])
        in_width = widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.num_res_blocks):
                self.blocks.append(ResBlock(in_width, width))
                in_width = width
            if level < config.num_downsamples:
                self.blocks.append(Upsample(width, widths[level + 1], temporal=temporal[level]))
                in_width = widths[level + 1]
        self.norm_out = norm(in_width)
        self.patch_size = config.patch_size
        self.conv_out = CausalConv3d(in_width, 3 * self.patch_size**2)
        self.checkpointing = False  # VideoTokenizer.set_gradient_checkpointing

    def forward(self, latent: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        x = run_blocks(self.blocks, self.conv_in(latent, cache), cache, self.checkpointing)
        x = self.conv_out(F.silu(self.norm_out(x)), cache)
        p = self.patch_size
        return rearrange(x, "b (c p q) t h w -> b c t (h p) (w q)", p=p, q=p)  # depth-to-space: (B, 3, T, H, W)

    @property
    def last_layer(self) -> torch.Tensor:
        """The output conv's weight, for the VQGAN adaptive GAN weight."""
        return self.conv_out.conv.weight


@dataclass
class TokenizerOutput:
    reconstruction: torch.Tensor  # (B, 3, T, H, W)
    codes: torch.Tensor  # (B, t, h, w)
    aux_loss: torch.Tensor  # the quantizer's own loss
    extras: dict = field(default_factory=dict)


class VideoTokenizer(nn.Module):
    """Causal 3D VQ-GAN: `encode(video) → codes`, `decode(codes) → video`, for any length, in chunks."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.quantizer = Quantizer(config.quantizer)
        self.encoder = Encoder(config, self.quantizer.dim)
        self.decoder = Decoder(config, self.quantizer.dim)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute the encoder's and decoder's blocks in the backward of a training forward (`run_blocks`)."""
        self.encoder.checkpointing = self.decoder.checkpointing = enabled

    def _apply(self, fn, recurse: bool = True):  # noqa: D102 - nn.Module API behind .to/.half/.bfloat16
        """As nn.Module's, but the quantizer stays fp32 whatever dtype the convolutions take (its rounding and
        codebook lose codes in bf16)."""
        super()._apply(fn, recurse)
        self.quantizer.float()
        return self

    # 1. Shapes: the stride arithmetic between frames and latent frames, pixel sizes and latent grids ----------
    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T, H, W) → (t, h, w); a clear error names the nearest valid sizes when they do not fit the strides."""
        stride_t = self.config.temporal_stride
        if frames < 1 or (frames - 1) % stride_t:
            lower = self.encodable_frames(max(frames, 1))
            raise ValueError(f"{frames} frames do not fit temporal stride {stride_t}: use 1 + {stride_t}·k frames "
                             f"(e.g. {lower} or {lower + stride_t})")
        return 1 + (frames - 1) // stride_t, *self.latent_grid((height, width))

    def latent_grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """Frame size (H, W) → latent grid (h, w); a clear error names the nearest valid size when it does not fit
        the spatial stride."""
        (height, width), stride_s = size, self.config.spatial_stride
        if height % stride_s or width % stride_s or height <= 0 or width <= 0:
            raise ValueError(f"size {width}x{height} (WxH) is not divisible by the spatial stride {stride_s}: "
                             f"use e.g. {_round_up(width, stride_s)}x{_round_up(height, stride_s)}")
        return height // stride_s, width // stride_s

    def frame_size(self, grid: tuple[int, int]) -> tuple[int, int]:
        """Latent grid (h, w) → frame size (H, W)."""
        return grid[0] * self.config.spatial_stride, grid[1] * self.config.spatial_stride

    def num_frames(self, latent_frames: int) -> int:
        """Pixel frames decoded from `latent_frames` latent frames."""
        return 1 + (latent_frames - 1) * self.config.temporal_stride

    def latent_frames(self, frames: int, continued: bool = False) -> int:
        """Latent frames that decode to at least `frames` frames (0 for none), so also the index of the first latent
        frame whose pixels start at or after frame `frames`. A video's first latent frame decodes to one frame and
        each later one to s (1 + ⌈(T-1)/s⌉); `continued` latent frames go on from earlier ones, s frames each
        (⌈T/s⌉)."""
        stride_t = self.config.temporal_stride
        if frames <= 0:
            return 0
        return -(-frames // stride_t) if continued else 1 + -(-(frames - 1) // stride_t)

    def encodable_frames(self, frames: int) -> int:
        """The most frames, at most `frames` (≥ 1), that encode on their own: 1 + s·k."""
        stride_t = self.config.temporal_stride
        return 1 + (frames - 1) // stride_t * stride_t

    # 2. Training forward (whole clip) -------------------------------------------------------------------------
    def forward(self, video: torch.Tensor, train_encoder: bool = True, code_noise: float = 0.0) -> TokenizerOutput:
        """Reconstruct a clip (B, 3, T, H, W) in [-1, 1]; returns reconstruction, codes and the quantizer loss.

        `train_encoder=False` encodes without gradients (the decoder fine-tune: the codes no longer change); there,
        `code_noise` is the fraction of codes the decoder gets swapped for codes from elsewhere in the batch. Under a
        bf16 autocast the encoder and decoder compute in bf16, the quantizer in fp32 all the same (its rounding and
        distances, and its loss).
        """
        self.latent_shape(*video.shape[2:])
        if code_noise and train_encoder:
            raise ValueError("code_noise needs train_encoder=False: swapped codes pass no gradient to the encoder")
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            encoded = self.encoder(video)
            with torch.autocast(video.device.type, enabled=False):
                quantized: QuantizerOutput = self.quantizer(encoded.float())
        latent = quantized.latent
        if code_noise:
            latent = self.quantizer.codes_to_latent(swap_codes(quantized.codes, code_noise))
        reconstruction = self.decoder(latent.to(encoded.dtype))
        return TokenizerOutput(reconstruction, quantized.codes, quantized.aux_loss)

    # 3. Chunked encode / decode ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Encode consecutive chunks of one clip: the first has 1 + s·a frames, each later one s·b frames."""
        cache = ConvCache()
        stride_t = self.config.temporal_stride
        for index, chunk in enumerate(chunks):
            frames = chunk.shape[2]
            if (index == 0 and (frames - 1) % stride_t) or (index > 0 and frames % stride_t) or frames == 0:
                expected = "1 + s·k" if index == 0 else "a multiple of s"
                raise ValueError(f"chunk {index} has {frames} frames; with temporal stride s={stride_t} it needs "
                                 f"{expected} frames")
            self.latent_shape(1, *chunk.shape[3:])
            yield self.encode_chunk(chunk, cache)

    @torch.no_grad()
    def decode_stream(self, code_chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Decode consecutive chunks of codes (B, t_i, h, w) of one clip to pixel chunks in [-1, 1]."""
        cache = ConvCache()
        for codes in code_chunks:
            yield self.decode_chunk(codes, cache)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the convolutions compute in (their weights'; `.to(dtype=…)` changes it)."""
        return self.encoder.conv_in.conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.encoder.conv_in.conv.weight.device

    @torch.no_grad()
    def encode_chunk(self, video: torch.Tensor, cache: ConvCache) -> torch.Tensor:
        """One chunk of a clip (sizes as `encode_stream` takes, any float dtype, moved to the model's device and
        dtype) → its codes, continuing from `cache`. The quantizer rounds in fp32 whatever the model's dtype."""
        latent = self.encoder(video.to(self.device, self.dtype), cache)
        return self.quantizer(latent.float()).codes

    @torch.no_grad()
    def decode_chunk(self, codes: torch.Tensor, cache: ConvCache) -> torch.Tensor:
        """One chunk of codes → its pixels in [-1, 1] (the model's dtype), continuing from `cache`."""
        latent = self.quantizer.codes_to_latent(codes.to(self.device))
        return self.decoder(latent.to(self.dtype), cache).clamp(-1, 1)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, T, H, W) in [-1, 1] → codes (B, t, h, w) int64, in temporal chunks."""
        self.latent_shape(*video.shape[2:])
        return torch.cat(list(self.encode_stream(self.split_frames(video))), dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, t, h, w) → pixels (B, 3, T, H, W) in [-1, 1], in temporal chunks."""
        step = self.config.chunk_latent_frames
        return torch.cat(list(self.decode_stream(codes.split(step, dim=1))), dim=2)

    def split_frames(self, video: torch.Tensor) -> list[torch.Tensor]:
        """Split a clip into the chunk sizes `encode_stream` accepts: 1 + s·n frames, then s·n frames each."""
        step = self.config.temporal_stride * self.config.chunk_latent_frames
        rest = video[:, :, 1 + step:]
        return [video[:, :, : 1 + step], *(rest.split(step, dim=2) if rest.shape[2] else [])]

    # 4. Checkpoints ------------------------------------------------------------------------------------------
    provenance: hub.Provenance | None = None  # what the card tells of the training (from_pretrained reads it)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None, *,
                        model_card: bool | None = None) -> Path:
        """Write `config.json` + `model.safetensors` into `directory`, each file atomically (temp + rename); `dtype`
        stores the parameters in it (e.g. torch.float16 to halve the file). `README.md`, the model card (training,
        config, scores; core/hub.py), is written when `model_card` is True, or by default when the training is
        known (a tokenizer loaded from a run directory or a carded directory)."""
        directory = Path(directory)
        write_config(directory / "config.json", self.config)
        state = weights_state(self, dtype)
        with atomic_file(directory / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "kind": "t2v-video-tokenizer"})
        hub.write_card(directory, self.model_card() if hub.wants_card(model_card, self.provenance) else None)
        return directory

    def model_card(self) -> str:
        """The tokenizer's model card (README.md): what it was trained on, its config, its held-out scores."""
        s, t = self.config.spatial_stride, self.config.temporal_stride
        facts = {"codebook size": self.codebook_size, "parameters": hub.parameter_count(
                     sum(p.numel() for p in self.parameters())),
                 "frames → latent frames": f"1 + {t}·k → 1 + k", "pixels per code": f"{s}×{s}"}
        usage = (f"from t2v.tokenizer.model import VideoTokenizer\n\n"
                 f"tokenizer = VideoTokenizer.from_pretrained(\"{hub.REPO_PLACEHOLDER}\")\n"
                 "codes = tokenizer.encode(video)  # (B, 3, T, H, W) in [-1, 1] → (B, t, h, w) codes\n"
                 "video = tokenizer.decode(codes)")
        summary = (f"A causal 3D VQ-GAN video tokenizer ({self.config.quantizer.kind.upper()}, {self.codebook_size} "
                   f"codes) of t2v: videos of any length to a grid of discrete codes (a latent frame per {t} frames, "
                   f"the first alone; a code per {s}×{s} pixels) and back, chunk by chunk.")
        config = dataclasses.asdict(self.config)
        kind = self.config.quantizer.kind
        config["quantizer"] = {k: v for k, v in config["quantizer"].items() if k == "kind" or k.startswith(f"{kind}_")}
        return hub.model_card("video-tokenizer", "t2v video tokenizer", summary, usage,
                              ["video", "video-tokenizer", "vq-gan", kind], facts, config, self.provenance)

    def push_to_hub(self, repo_id: str, dtype: torch.dtype | None = None, **options: Any) -> str:
        """Upload the saved tokenizer (with its card) to the hub repository `repo_id` (created if missing); the
        commit's URL. `options`: `huggingface_hub.ModelHubMixin.push_to_hub`'s (commit_message, private, token,
        branch, create_pr)."""
        return hub.push(lambda folder: self.save_pretrained(folder, dtype, model_card=True), repo_id, **options)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu", **hub_options: Any) -> "VideoTokenizer":
        """Load a tokenizer saved by `save_pretrained`, or a training run directory (whose config.json holds the
        whole training config, the model's under "model"), or one published on the hub (`user/repo`: downloaded
        into the hub's cache; `hub_options`: revision, cache_dir, token, force_download, local_files_only). A
        damaged or incomplete file is a one-line ValueError naming it."""
        directory = hub.pretrained_dir(directory, "tokenizer", **hub_options)
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        if not directory.is_dir():
            raise FileNotFoundError(f"tokenizer directory not found: {directory}")
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{directory} is not a tokenizer: it needs config.json and model.safetensors "
                                    "(train one with `t2v tokenizer train`)")
        model = cls(_read_config(config_path))
        load_weights(model, weights_path, _REPAIR, device=map_location)
        model.provenance = hub.read_provenance(directory, "video-tokenizer")
        return model.eval()


# What a damaged tokenizer file needs, and the keys its config.json must hold (each since the first version; the
# others have defaults): without them the model would be built with another architecture or codebook.
_REPAIR = "copy the tokenizer directory again, or re-run `t2v tokenizer train` to write it"
_REQUIRED = ("channels", "num_res_blocks", "spatial_stride", "temporal_stride", "quantizer")
_REQUIRED_QUANTIZER = {"fsq": ("kind", "fsq_levels"), "lfq": ("kind", "lfq_bits"),
                       "vq": ("kind", "vq_codebook_size", "vq_dim")}


def _read_config(path: Path) -> TokenizerConfig:
    """The tokenizer config in `path` (a `save_pretrained` config.json, or a run's, the model's under "model"),
    checked: valid JSON, an object, the required keys and no unknown ones, values `TokenizerConfig` accepts."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" (line {error.lineno}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        raise ValueError(f"{path}: not valid JSON{where}: the file is damaged; {_REPAIR}") from None
    if isinstance(values, dict) and isinstance(values.get("model"), dict):
        values = values["model"]
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of tokenizer settings, got a {type(values).__name__}; "
                         f"{_REPAIR}")
    values = TokenizerConfig.upgrade(values)  # a config.json of the flat quantizer layout
    known = {f.name for f in dataclasses.fields(TokenizerConfig)}
    if not known.issuperset(values):
        raise ValueError(f"{path} is not a video tokenizer config (unexpected keys {sorted(set(values) - known)})")
    missing = [key for key in _REQUIRED if key not in values]
    section = values.get("quantizer")
    if isinstance(section, dict):
        missing += [f"quantizer.{key}" for key in _REQUIRED_QUANTIZER.get(section.get("kind"), ("kind",))
                    if key not in section]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}: the file is incomplete or damaged; {_REPAIR}")
    try:
        return from_dict(TokenizerConfig, values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}; {_REPAIR}") from None


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, (value + multiple - 1) // multiple * multiple)
