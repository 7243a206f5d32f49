"""Reconstruction metrics on videos in [-1, 1]: PSNR and SSIM (per frame, Gaussian window 11, σ 1.5), as in
the image-quality literature, computed on the [0, 1] scale; and two reference reconstructions that learn nothing,
so that a tokenizer's PSNR can be read against them: each frame down-sampled (area) and up-sampled again
(bilinear) by the tokenizer's spatial factor, and each frame's mean colour."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-clip PSNR in dB of videos (B, 3, T, H, W) in [-1, 1]; identical clips give +inf."""
    mse = ((a.float() - b.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def downsampled(video: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Each frame of videos (B, 3, T, H, W) averaged over factor×factor blocks and bilinearly up-sampled back."""
    frames = rearrange(video.float(), "b c t h w -> (b t) c h w")
    small = F.avg_pool2d(frames, factor, ceil_mode=True)
    back = F.interpolate(small, size=frames.shape[-2:], mode="bilinear", align_corners=False)
    return rearrange(back, "(b t) c h w -> b c t h w", b=video.shape[0])


def mean_colour(video: torch.Tensor) -> torch.Tensor:
    """Every pixel of each frame of videos (B, 3, T, H, W) replaced by the frame's mean colour."""
    return video.float().mean(dim=(3, 4), keepdim=True).expand_as(video)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-coords.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-clip SSIM of videos (B, 3, T, H, W) in [-1, 1], averaged over frames, channels and positions."""
    batch = a.shape[0]
    x = rearrange((a.float() + 1) / 2, "b c t h w -> (b t c) 1 h w")
    y = rearrange((b.float() + 1) / 2, "b c t h w -> (b t c) 1 h w")
    size = min(11, x.shape[-1], x.shape[-2])
    window = _gaussian_window(size=size if size % 2 else size - 1).to(x.device)  # odd, at most the frame
    filt = lambda z: F.conv2d(z, window)  # noqa: E731 - local shorthand
    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(1).view(batch, -1).mean(1)
