"""Sampling keeps its recorded outputs: fixed tiny random models and seeds give these exact codes and frames.

The expected values were recorded from `sample_codes`, `TextToVideo.generate/extend` and `t2v generate` before
sample.py was split into a window object and a per-frame decoding strategy (issue 17, item 4); any change to
how sampling draws, rolls or changes prompts shows here. Codes are compared as lists where short, else as the
sha256 of their int64 bytes; videos as the sha256 of their uint8 frames. The values hold for this CPU build of
torch, single-threaded (conftest): another build may round a logit differently, and then they are re-recorded
from the code before a change, never after it.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from conftest import run_main, tiny_generator, tiny_pipeline
from t2v.generator.sample import SamplingConfig, sample_codes
from t2v.generator.prompts import PromptChange

H, W = 2, 3  # latent grid of the code cases
CONFIGS = {"guided": SamplingConfig(), "unguided": SamplingConfig(cfg_scale=1.0)}  # temperature 0.7, top-k 20
RED, UP = "a red circle moving left slowly", "a red circle moving up slowly"


def digest(array: torch.Tensor | np.ndarray) -> str:
    """sha256 of an array's shape and bytes (int64 codes, uint8 frames)."""
    array = np.ascontiguousarray(array.numpy() if isinstance(array, torch.Tensor) else array)
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()


def sampled(case: str, config: SamplingConfig) -> torch.Tensor:
    """Codes (2, t, h, w) of a two-caption batch from the tiny random generator, seed 7."""
    model = tiny_generator()
    vocab = model.vocab
    first = torch.stack([vocab.prefix([1, 2], (H, W), 8), vocab.prefix([3], (H, W), 8)])
    second = torch.stack([vocab.prefix([30, 31, 32], (H, W), 8), vocab.prefix([40, 41], (H, W), 8)])
    context = torch.randint(0, 64, (2, 4, H, W), generator=torch.Generator().manual_seed(5))
    rng = torch.Generator().manual_seed(7)
    if case == "short":  # (a) no roll
        return sample_codes(model, first, (2, H, W), config, rng)
    if case == "long":  # (b) 9 latent frames through a window of 3: the first frame leaves, then later ones
        return sample_codes(model, first, (9, H, W), config, rng, window=3)
    if case == "prompt change":  # (c) two changes, the second after rolls
        return sample_codes(model, [(0, first), (3, second), (7, first)], (9, H, W), config, rng, window=3)
    if case == "extension":  # (d) a context longer than the window: the window opens at slot 1
        return sample_codes(model, first, (5, H, W), config, rng, window=3, context=context)
    if case == "short extension":  # (d) a context that fits: it opens the video at slot 0
        return sample_codes(model, second, (3, H, W), config, rng, context=context[:, :1])
    raise ValueError(case)


SHORT = {
    "guided": [16, 13, 36, 8, 51, 28, 13, 1, 1, 22, 23, 7, 35, 27, 16, 16, 49, 35, 50, 10, 54, 23, 46, 40],
    "unguided": [16, 4, 23, 8, 14, 14, 32, 1, 41, 9, 41, 6, 58, 28, 55, 16, 49, 35, 5, 21, 23, 37, 46, 40],
}
CODES = {
    ("long", "guided"): "56d82509e151c9659aa5475977bb897b6a5939fafda4a1d81a6a077da3173b8b",
    ("long", "unguided"): "0672dfeca2013c1e6b721e7ee56c3e7f3fbfbe7b54eac6c5a5679963027204dc",
    ("prompt change", "guided"): "b0edbd3b59148bb2ba6e7ae6e701a231d0923aa53fa2d2f52823cdbfd33ddd85",
    ("prompt change", "unguided"): "961e0371c7e6640725999491018a0cb82587a9bc25c88ee5afb0f967dbdbdab4",
    ("extension", "guided"): "ee1bde70545c379cfcef2ef3736ede9126fb05d4869fef67aaa94ef5a7d67d60",
    ("extension", "unguided"): "88975b621434caeaee87402e2c9baac38973b6891c9f5718f25cbe067dd5b38a",
    ("short extension", "guided"): "fc588cbb7ae9f444050703616218e295447ec0824eedf66520fdade9b9635f5e",
    ("short extension", "unguided"): "292d1f47a2e710ef50c9f73ea6b25aa10cf9fd965865550e4a52bd7b7f3018ba",
}
VIDEOS = {
    ("short", "guided"): "c5cbbcd4c1f88c3806fe82e6ec672f8cf2e4728b05c0c14f8b051f2317c075ff",
    ("short", "unguided"): "e990ba916ea4c9c4e06d58f9af10783c0d4db896287bce75f65853e736e68011",
    ("long", "guided"): "5331dec3b6cb8bf88778a79d1af4393610f04b83b88d7ae2f3f37f2ba085bf7d",
    ("long", "unguided"): "7f36d8a244182cdc00ab91363590acea56049c7e7aa96376c249bc8358e54fef",
    ("prompt change", "guided"): "b78ce9ac970ebb72044916450cf1af4e210dc5e834a7e7c9a4503fc3ef75f155",
    ("prompt change", "unguided"): "791f6407e804f2563cf9f53e2a9a9ed8084208be75a9da56f1654c015cc552bb",
    ("extension", "guided"): "099129f5a1e79416d84c0a08acbc70003d8e626418bc523108bd547475638413",
    ("extension", "unguided"): "65ddb30acb175772d91f3365e112547f2cfb2729d7e94a770981d3d32a63691d",
}
CLI_VIDEO = "60cf14a61e7d1be27a788ff21008dbb900d6053e197d343cb932d1e83cd69add"


@pytest.mark.parametrize("config", CONFIGS)
def test_a_short_video_keeps_its_codes(config):
    assert sampled("short", CONFIGS[config]).flatten().tolist() == SHORT[config]


@pytest.mark.parametrize("case,config", CODES)
def test_long_videos_prompt_changes_and_extensions_keep_their_codes(case, config):
    assert digest(sampled(case, CONFIGS[config])) == CODES[case, config]


@pytest.fixture(scope="module")
def pipeline(text):
    return tiny_pipeline(text)  # 5-frame 16×16 clips: 2 latent frames of 2×2, temporal stride 4, window 2


def video(pipeline, case: str, config: SamplingConfig) -> np.ndarray:
    """uint8 frames (B, T, H, W, 3) of the tiny random pipeline."""
    if case == "short":  # (a) 2 latent frames, the window
        chunks = pipeline.generate(RED, frames=5, sampling=config, seed=3)
    elif case == "long":  # (b) 11 latent frames through a window of 2, two samples side by side
        chunks = pipeline.generate(RED, frames=41, sampling=config, seed=3, num_samples=2)
    elif case == "prompt change":  # (c)
        chunks = pipeline.generate([PromptChange(0, RED), PromptChange(20, UP)], frames=41, sampling=config, seed=4)
    elif case == "extension":  # (d) 13 frames go on by 10
        given = pipeline(RED, frames=13, sampling=config, seed=1)[0]
        chunks = pipeline.extend(given, UP, frames=10, sampling=config, seed=2)
    else:
        raise ValueError(case)
    return np.concatenate(list(chunks), axis=1)


@pytest.mark.parametrize("case,config", VIDEOS)
def test_pipeline_videos_keep_their_frames(pipeline, case, config):
    assert digest(video(pipeline, case, CONFIGS[config])) == VIDEOS[case, config]


def test_t2v_generate_keeps_its_frames(pipeline, tmp_path, monkeypatch, capsys):
    from t2v.tokenizer.video_io import read_video

    directory = pipeline.save_pretrained(tmp_path / "pipeline")
    out = tmp_path / "frames"  # a PNG folder: the frames exactly
    code, _, err = run_main(["generate", str(directory), "-o", str(out), "--frames", "29", "--seed", "5",
                             "--prompt", RED, "--prompt", f"12:{UP}"], monkeypatch, capsys)
    assert code == 0, err
    assert digest(read_video(out)[0]) == CLI_VIDEO
