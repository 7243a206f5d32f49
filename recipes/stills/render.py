"""Frames from layers of pictures under per-frame affine maps: bilinear sampling (torch's grid_sample), each layer
over the ones before it.

A layer is a uint8 picture and, per frame, the 2×3 map from output pixel coordinates (x, y, 1), pixel centres at
+0.5, to the picture's. Outside its picture a layer is transparent, and its edge is anti-aliased (the bilinear
sample of its coverage). Before sampling, a picture seen at more than one source pixel per output pixel in every
frame is reduced (area-averaging) to the scale of its closest frame, so that the sampling does not alias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Layer:
    """A uint8 (h, w, 3) `picture` and its (T, 2, 3) `matrices` (output → picture pixel coordinates)."""

    picture: np.ndarray
    matrices: np.ndarray


def _reduced(picture: torch.Tensor, matrices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The picture (1, 3, h, w) reduced by its smallest per-frame scale when above 1, and the maps onto it."""
    scale = float(np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2]))).min())  # source px per output px
    if scale <= 1.0:
        return picture, matrices
    height, width = picture.shape[-2:]
    size = (max(1, round(height / scale)), max(1, round(width / scale)))
    factors = np.array([size[1] / width, size[0] / height])[:, None]
    return F.interpolate(picture, size=size, mode="area"), matrices * factors


def sample(layer: Layer, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's colours (T, 3, H, W) in [0, 255] and coverage (T, 1, H, W) in [0, 1]."""
    height, width = size
    picture = torch.from_numpy(np.array(layer.picture, np.float32)).permute(2, 0, 1)[None]
    picture, matrices = _reduced(picture, layer.matrices)
    source_height, source_width = picture.shape[-2:]
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    points = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (H, W, 3)
    source = np.einsum("tij,hwj->thwi", matrices, points)  # (T, H, W, 2) picture coordinates (x, y)
    grid = torch.from_numpy(source / [source_width, source_height] * 2 - 1).float()
    frames = len(matrices)
    with_coverage = torch.cat([picture, torch.ones_like(picture[:, :1])], dim=1).expand(frames, -1, -1, -1)
    sampled = F.grid_sample(with_coverage, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[:, :3], sampled[:, 3:]


def render(layers: list[Layer], size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3): the layers composited in order (the first at the back)."""
    frames: torch.Tensor | None = None
    for layer in layers:
        colour, coverage = sample(layer, size)
        # colour is the coverage-weighted sample (zeros outside), so over = colour + (1 - coverage) · below
        frames = colour if frames is None else colour + (1 - coverage) * frames
    assert frames is not None, "render needs at least one layer"
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
