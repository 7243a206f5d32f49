"""Shared fixtures of the tokenizer tests: tiny model configs and one tiny shapes dataset per session."""
from __future__ import annotations

import pytest
import torch

from t2v.tokenizer.model import TokenizerConfig, VideoTokenizer, preset

QUANTIZERS = ("fsq", "lfq", "vq")

# Tiny convolutions gain nothing from intra-op threads, and on a busy machine OpenMP's spinning threads make them
# ~10× slower: the tests run single-threaded (the distributed test's ranks get OMP_NUM_THREADS=1 too).
torch.set_num_threads(1)


def tiny_config(quantizer: str = "fsq", **overrides) -> TokenizerConfig:
    """A tokenizer small enough for CPU tests: 4 levels of 8–16 channels, one res block, small codebooks."""
    values = dict(channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=quantizer, fsq_levels=(4, 4, 4),
                  lfq_bits=6, vq_codebook_size=32, vq_dim=4)
    values.update(overrides)
    return preset("tiny", **values)


def tiny_model(quantizer: str = "fsq", seed: int = 0, **overrides) -> VideoTokenizer:
    torch.manual_seed(seed)
    return VideoTokenizer(tiny_config(quantizer, **overrides)).eval()


def random_video(batch: int = 1, frames: int = 9, height: int = 16, width: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded (B, 3, T, H, W) clip of uniform noise in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1


@pytest.fixture(scope="session")
def shapes_index(tmp_path_factory):
    """index.jsonl of 24 tiny shapes clips (9 frames, 32×32) with seen/heldout splits."""
    from t2v.recipes.shapes.dataset import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "shapes", num=24, frames=9, size=(32, 32), seed=0)


def initialise_codebook(model: VideoTokenizer, video: torch.Tensor) -> VideoTokenizer:
    """One training-mode forward, so a VQ codebook has seen data (EMA update); FSQ and LFQ have no state to change."""
    model.train()
    with torch.no_grad():
        model(video)
    return model.eval()
