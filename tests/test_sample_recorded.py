"""Sampling keeps its recorded outputs: fixed tiny random models and seeds give these exact codes and frames.

The expected values were recorded from `sample_codes`, `TextToVideo.generate/extend` and `t2v generate` before
sample.py was split into a window object and a per-frame decoding strategy (issue 17, item 4); any change to
how sampling draws, rolls or changes prompts shows here. Codes are compared as lists where short, else as the
sha256 of their int64 bytes; a video by the codes its pipeline hands the tokenizer to decode, and its frames by
equality with the decoding of those codes (the last bits of a convolution differ between CPUs, and with them the
rounding of some pixels, so frame bytes are not recorded). The values hold for this CPU build of torch,
single-threaded (conftest): another build may round a logit differently, and then they are re-recorded from the
code before a change, never after it.
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
VIDEOS = {  # the codes each pipeline video decodes
    ("short", "guided"): "cdcc292a9ed6691ad98659ba212f23d486275dc04e5c0a042a00d76680680283",
    ("short", "unguided"): "6d2e8d083d44a671388c9e1280fecb3c751db5d160498363ee16dba5d5d91e57",
    ("long", "guided"): "cb017add479f30b7d878c881b08b0b666cae4885b385a7043aece2fe62269e9b",
    ("long", "unguided"): "998d77a3387b6a914a6c2cb6bb3ddf1bb8330b622e1a984a3240d24af7ec0d96",
    ("prompt change", "guided"): "59c2e116d8c7e3866918b77f7d5924c41a89ed120f38cfae087b8a67ffa7c1f7",
    ("prompt change", "unguided"): "3a4417c444285600baac8c42580955ed3f478e4c7cf28e49ae9af6b6cab91c1c",
    ("extension", "guided"): "16c12423b90b60c56f8ff960d984316d1ef01b89be335f76d725579be0c44c55",
    ("extension", "unguided"): "5cf9ec4bab8ca30fe84f901375bf133c9f8780477d950ba72ba0dcc9e6a35df4",
}
CLI_VIDEO = "d4fa9ead0261b049c9620fea65760955e6262ec927acc60a17badd163a3bd937"


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


def decoded(monkeypatch, run) -> tuple[list[torch.Tensor], np.ndarray]:
    """What `run()` hands the video tokenizer to decode (one code chunk per call, an extension's context first)
    and the frames it returns."""
    from t2v.tokenizer.model import VideoTokenizer

    calls, decode_chunk = [], VideoTokenizer.decode_chunk

    def record(self, codes, cache):
        calls.append(codes.clone())
        return decode_chunk(self, codes, cache)

    with monkeypatch.context() as patch:
        patch.setattr(VideoTokenizer, "decode_chunk", record)
        frames = run()
    return calls, frames


def decode_uint8(tokenizer, codes: torch.Tensor) -> np.ndarray:
    """uint8 frames (B, T, H, W, 3) of `codes` decoded in one call."""
    from t2v.tokenizer.frames import to_uint8

    with torch.no_grad():
        return np.stack([to_uint8(v) for v in tokenizer.decode(codes)])


@pytest.mark.parametrize("case,config", VIDEOS)
def test_pipeline_videos_keep_their_frames(pipeline, case, config, monkeypatch):
    """The codes the pipeline decodes are the recorded ones, and its frames are exactly their decoding (frames are
    compared to the decode on this machine, not to recorded bytes: the last bit of a convolution, and so the
    rounding of a pixel, differs between CPUs)."""
    if case == "extension":  # the given video is made first; the recorded codes are the extension's
        given = pipeline(RED, frames=13, sampling=CONFIGS[config], seed=1)[0]
        calls, frames = decoded(monkeypatch, lambda: np.concatenate(list(pipeline.extend(
            given, UP, frames=10, sampling=CONFIGS[config], seed=2)), axis=1))
    else:
        calls, frames = decoded(monkeypatch, lambda: video(pipeline, case, CONFIGS[config]))
    codes = torch.cat(calls, dim=1)
    assert digest(codes) == VIDEOS[case, config]
    skip = pipeline.video_tokenizer.num_frames(calls[0].shape[1]) if case == "extension" else 0
    expected = decode_uint8(pipeline.video_tokenizer, codes)[:, skip:skip + frames.shape[1]]
    assert frames.shape[1] > 0 and np.array_equal(frames, expected)


def test_t2v_generate_keeps_its_frames(pipeline, tmp_path, monkeypatch, capsys):
    from t2v.tokenizer.video_io import read_video

    directory = pipeline.save_pretrained(tmp_path / "pipeline")
    out = tmp_path / "frames"  # a PNG folder: the frames exactly
    calls, (code, _, err) = decoded(monkeypatch, lambda: run_main([
        "generate", str(directory), "-o", str(out), "--frames", "29", "--seed", "5", "--prompt", RED, "--prompt",
        f"12:{UP}"], monkeypatch, capsys))
    assert code == 0, err
    codes = torch.cat(calls, dim=1)
    assert digest(codes) == CLI_VIDEO
    frames = read_video(out)[0]
    assert frames.shape[0] == 29 and np.array_equal(frames, decode_uint8(pipeline.video_tokenizer, codes)[0, :29])
