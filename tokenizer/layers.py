"""Causal 3D building blocks of the video tokenizer, each able to run on temporal chunks through a `ConvCache`.

Notable choices:
- Causality in time: every temporal convolution pads only on the past side (replicating the first frame), so frame
  i never sees frame i+1 and the first frame is processed alone: an image is a one-frame video.
- Chunking: with a `ConvCache`, each causal conv keeps the tail of its padded input (kernel − stride frames) and
  prepends it to the next chunk. Running chunk by chunk therefore computes exactly what the whole clip computes,
  with memory bounded by the chunk size. With `cache=None` a call is a whole clip.
- Normalisation is GroupNorm applied per frame, never across time (it would leak the future and break chunking).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class ConvCache:
    """Explicit per-layer state of a chunked pass: the past frames each causal conv needs from the previous chunk."""

    def __init__(self) -> None:
        self._tails: dict[int, torch.Tensor] = {}

    def get(self, layer: nn.Module) -> torch.Tensor | None:
        return self._tails.get(id(layer))

    def set(self, layer: nn.Module, tail: torch.Tensor) -> None:
        self._tails[id(layer)] = tail

    def started(self, layer: nn.Module) -> bool:
        """Whether `layer` has already seen a chunk (so the current one is not the clip's first)."""
        return id(layer) in self._tails


class CausalConv3d(nn.Module):
    """3D convolution, causal in time (past-side replicate padding), 'same' padding in space."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: tuple[int, int] = (1, 1),
                 temporal_kernel: int | None = None) -> None:
        super().__init__()
        self.temporal_kernel = kernel if temporal_kernel is None else temporal_kernel
        self.temporal_stride, spatial_stride = stride
        if self.temporal_kernel < self.temporal_stride:
            raise ValueError("temporal kernel must be at least the temporal stride")
        self.conv = nn.Conv3d(in_channels, out_channels, (self.temporal_kernel, kernel, kernel),
                              stride=(self.temporal_stride, spatial_stride, spatial_stride),
                              padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        # x: (B, C, T, H, W)
        past = cache.get(self) if cache is not None else None
        if past is None and x.shape[2] == 1:
            return self._single_frame(x, cache)
        if past is None:
            past = x[:, :, :1].expand(-1, -1, self.temporal_kernel - 1, -1, -1)
        padded = torch.cat([past, x], dim=2)
        if cache is not None:
            keep = self.temporal_kernel - self.temporal_stride
            cache.set(self, padded[:, :, padded.shape[2] - keep:].detach())
        return self.conv(padded)

    def _single_frame(self, x: torch.Tensor, cache: ConvCache | None) -> torch.Tensor:
        """A clip's first frame alone (an image): its padding repeats it, so the temporal taps all see the same
        frame and the conv equals one 2D conv with the taps summed, at a third of the cost (kernel 3)."""
        if cache is not None:
            keep = self.temporal_kernel - self.temporal_stride
            cache.set(self, x.detach().expand(-1, -1, keep, -1, -1))
        conv = self.conv
        weight = conv.weight.sum(dim=2, keepdim=True)
        return F.conv3d(x, weight, conv.bias, stride=(1, *conv.stride[1:]), padding=(0, *conv.padding[1:]))


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (C, H, W) of each frame separately: no statistics cross time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        x = rearrange(x, "b c t h w -> (b t) c h w")
        x = super().forward(x)
        return rearrange(x, "(b t) c h w -> b c t h w", t=frames)


def norm(channels: int) -> FrameGroupNorm:
    return FrameGroupNorm(num_groups=min(32, channels // 4) or 1, num_channels=channels, eps=1e-6)


class ResBlock(nn.Module):
    """Pre-activation residual block: (norm, SiLU, causal conv) × 2, with a 1×1×1 shortcut when widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = norm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.norm2 = norm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        self.shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.shortcut(x) + h


class Downsample(nn.Module):
    """Strided causal conv: ×½ in space, and ×½ in time when `temporal` (T = 1 + 2k → 1 + k)."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, stride=(2 if temporal else 1, 2))

    def forward(self, x: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        return self.conv(x, cache)


class Upsample(nn.Module):
    """×2 in space (nearest + conv to `out_channels`), and ×2 in time when `temporal` (1 + k → 1 + 2k) by depth-to-time.

    Time upsampling emits two frames per input frame and drops the very first one of the clip, mirroring the
    encoder, where the first frame is encoded alone.
    """

    def __init__(self, in_channels: int, out_channels: int, temporal: bool) -> None:
        super().__init__()
        self.temporal = temporal
        if temporal:
            self.time_conv = CausalConv3d(in_channels, in_channels * 2)
        self.conv = CausalConv3d(in_channels, out_channels)

    def forward(self, x: torch.Tensor, cache: ConvCache | None = None) -> torch.Tensor:
        if self.temporal:
            first_chunk = cache is None or not cache.started(self.time_conv)
            x = self.time_conv(x, cache)
            x = rearrange(x, "b (c r) t h w -> b c (t r) h w", r=2)  # (B, C, 2T, H, W)
            if first_chunk:
                x = x[:, :, 1:]
        frames = x.shape[2]
        x = rearrange(x, "b c t h w -> (b t) c h w")
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = rearrange(x, "(b t) c h w -> b c t h w", t=frames)
        return self.conv(x, cache)
