"""Reconstruct a video file through the tokenizer, streaming: memory stays bounded whatever the length.

Steps: 1. probe the input and choose the size (padded up to the spatial stride's multiple, cropped back after)
2. read frames in chunks, resize and crop 3. regroup into the tokenizer's chunk sizes 4. encode and decode each
chunk through the causal caches 5. write the reconstruction (and a side-by-side) as the chunks come, accumulating
PSNR and SSIM.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from tqdm import tqdm

from t2v.tokenizer.layers import ConvCache
from t2v.tokenizer.metrics import ssim
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.frames import read_tokenizer_chunks, to_pixels, to_uint8
from t2v.tokenizer.video_io import VideoWriter, probe


@dataclass
class ReconstructResult:
    frames: int
    size: tuple[int, int]  # (H, W)
    psnr: float
    ssim: float
    seconds: float
    output: Path
    side_by_side: Path | None


@torch.no_grad()
def reconstruct_file(model: VideoTokenizer, in_path: str | Path, out_path: str | Path,
                     size: tuple[int, int] | None = None, max_frames: int | None = None,
                     side_by_side: str | Path | None = None, device: str | torch.device = "cpu",
                     overwrite: bool = False, dtype: torch.dtype = torch.float32) -> ReconstructResult:
    """Encode and decode `in_path` chunk by chunk, writing `out_path` (and `side_by_side`: original | output);
    an existing output is refused before any work unless `overwrite` (see tokenizer/outputs.py). The model runs
    on `device` in `dtype`; the metrics are computed in float32."""
    # 1. Size: the file's own unless given. A side the spatial stride does not divide is padded (edge pixels
    # repeated) up to its next multiple for the tokenizer, and the reconstruction cropped back: any video works.
    info = probe(in_path)
    height, width = size if size is not None else (info.height, info.width)
    stride_s = model.config.spatial_stride
    pad_h, pad_w = -height % stride_s, -width % stride_s
    model.latent_shape(1, height + pad_h, width + pad_w)
    fps = info.fps
    model = model.to(device=device, dtype=dtype).eval()
    stride, chunk_latents = model.config.temporal_stride, model.config.chunk_latent_frames
    total = min(info.num_frames or 0, max_frames or math.inf) or None

    encoder_cache, decoder_cache = ConvCache(), ConvCache()
    squared_error, ssim_sum, count = 0.0, 0.0, 0
    started = time.time()
    with contextlib.ExitStack() as stack:  # a failure aborts the writers: no partial output files
        writer = stack.enter_context(VideoWriter(out_path, fps, overwrite=overwrite))
        pair_writer = stack.enter_context(VideoWriter(side_by_side, fps, overwrite=overwrite)) if side_by_side else None
        progress = stack.enter_context(tqdm(total=total, desc="reconstruct", unit="frame", dynamic_ncols=True))
        # 2–3. Read in chunks, resize/crop, regroup into tokenizer chunks.
        for chunk, real in read_tokenizer_chunks(in_path, (height, width), stride, chunk_latents,
                                                 max_frames=max_frames):
            # 4. One chunk through both causal caches.
            video = to_pixels(chunk, device)  # (1, 3, T, H, W), float32 for the metrics
            padded = (to_pixels(np.pad(chunk, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge"), device)
                      if pad_h or pad_w else video)
            output = model.decode_chunk(model.encode_chunk(padded.to(dtype), encoder_cache), decoder_cache).float()
            video, output = video[:, :, :real], output[:, :, :real, :height, :width]
            # 5. Stream out, accumulate metrics on the uint8 frames actually written.
            written = to_uint8(output[0])
            writer.write(written)
            if pair_writer is not None:
                pair_writer.write(np.concatenate([chunk[:real], written], axis=2))
            error = (chunk[:real].astype(np.float64) - written.astype(np.float64)) / 255.0
            squared_error += float((error**2).sum())
            per_frame = "1 c t h w -> t c 1 h w"  # SSIM of each frame as its own one-frame clip
            ssim_sum += float(ssim(rearrange(video, per_frame), rearrange(to_pixels(written, device), per_frame)).sum())
            count += real
            progress.update(real)
    if count == 0:
        raise ValueError(f"no frames decoded from {in_path}")
    mse = squared_error / (count * height * width * 3)
    return ReconstructResult(frames=count, size=(height, width), psnr=10 * math.log10(1.0 / max(mse, 1e-12)),
                             ssim=ssim_sum / count, seconds=time.time() - started, output=Path(out_path),
                             side_by_side=Path(side_by_side) if side_by_side else None)
