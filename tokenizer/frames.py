"""Frame chunks in the sizes the causal tokenizer takes, and conversions between file frames and model pixels.

A clip enters the tokenizer as chunks of 1 + s·n frames, then s·n frames (s = temporal stride); a video of any
length is regrouped into those sizes as it is read, and its last chunk is padded by repeating the last frame up
to a multiple of s (the padding is dropped again after decoding).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from t2v.tokenizer.video_io import iter_video, resize_and_crop


def to_pixels(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (T, H, W, 3) → float32 (1, 3, T, H, W) in [-1, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return (video.permute(3, 0, 1, 2).float() / 127.5 - 1.0)[None]


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """One clip (3, T, H, W) in [-1, 1] → uint8 (T, H, W, 3)."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()


def tokenizer_chunks(frame_chunks: Iterable[np.ndarray], temporal_stride: int,
                     chunk_latent_frames: int) -> Iterator[tuple[np.ndarray, int]]:
    """Regroup frames into 1 + s·n, then s·n frames; yields (chunk, real frame count), padding only the last."""
    step = temporal_stride * chunk_latent_frames
    wanted = 1 + step
    buffer: list[np.ndarray] = []
    held = 0
    for frames in frame_chunks:
        buffer.append(frames)
        held += len(frames)
        while held >= wanted:
            joined = np.concatenate(buffer)
            yield joined[:wanted], wanted
            buffer, held, wanted = [joined[wanted:]], held - wanted, step
    if held:
        joined = np.concatenate(buffer)
        is_first = wanted == 1 + step
        remainder = (held - 1 if is_first else held) % temporal_stride
        padding = np.repeat(joined[-1:], (temporal_stride - remainder) % temporal_stride, axis=0)
        yield np.concatenate([joined, padding]), held


def read_tokenizer_chunks(path: str | Path, size: tuple[int, int], temporal_stride: int, chunk_latent_frames: int,
                          fps: float | None = None, start: float = 0.0, end: float | None = None,
                          max_frames: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Stream a video file as center-cropped (chunk, real frame count) pairs in the tokenizer's chunk sizes."""
    frames = (resize_and_crop(chunk, size, "center") for chunk in
              iter_video(path, chunk_frames=temporal_stride * chunk_latent_frames, fps=fps, start=start, end=end,
                         max_frames=max_frames))
    return tokenizer_chunks(frames, temporal_stride, chunk_latent_frames)
