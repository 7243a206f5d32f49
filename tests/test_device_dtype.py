"""Device and dtype: `--device/--dtype` on the commands, `TextToVideo.to`, fp32 where precision matters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import run_main, tiny_generator, tiny_pipeline
from t2v.core.precision import compute_dtype, resolve
from t2v.generator.cache import KVCache
from t2v.generator.sample import roll
from t2v.tokenizer.video_io import read_video, write_video


@pytest.fixture(scope="module")
def pipeline_dir(text, tmp_path_factory):
    return tiny_pipeline(text).save_pretrained(tmp_path_factory.mktemp("pipe") / "pipeline")


def test_names_resolve_to_devices_and_dtypes():
    assert resolve() == (torch.device("cuda" if torch.cuda.is_available() else "cpu"),
                         torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert resolve("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    assert compute_dtype("float16", "cpu") == torch.float16 and compute_dtype("fp32", "cuda") == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        resolve("cpu", "int8")
    with pytest.raises(ValueError, match="unsupported device|unknown device"):
        resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is visible here.*--device cpu"):
            resolve("cuda:0")


def test_pipeline_to_bfloat16_keeps_quantizer_and_rotary_in_fp32(text):
    pipeline = tiny_pipeline(text)
    before = pipeline("a red circle moving left slowly", frames=5, seed=3)
    assert pipeline.to("cpu", torch.bfloat16) is pipeline
    assert pipeline.dtype == torch.bfloat16 and pipeline.device == torch.device("cpu")
    assert pipeline.video_tokenizer.dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in pipeline.video_tokenizer.quantizer.parameters())
    assert all(b.dtype == torch.float32 for b in pipeline.video_tokenizer.quantizer.buffers() if b.is_floating_point())
    rotary = pipeline.generator.decoder.rotary_emb
    exact, _ = rotary.compute_default_rope_parameters(rotary.config)
    assert rotary.inv_freq.dtype == torch.float32 and torch.equal(rotary.inv_freq, exact)
    after = pipeline("a red circle moving left slowly", frames=5, seed=3)
    assert after.shape == before.shape == (1, 5, 16, 16, 3) and after.dtype == np.uint8
    # the same seed, device and dtype give the same video
    assert np.array_equal(after, pipeline("a red circle moving left slowly", frames=5, seed=3))


def test_bfloat16_tokenizer_reconstructs_close_to_fp32(text):
    tokenizer = tiny_pipeline(text).video_tokenizer
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    codes = tokenizer.encode(video)
    pixels = tokenizer.decode(codes)
    tokenizer.to(dtype=torch.bfloat16)
    codes_bf16 = tokenizer.encode(video)  # fp32 input: moved to the model's dtype
    assert (codes_bf16 == codes).float().mean() > 0.8  # a few codes sit on a rounding boundary
    decoded = tokenizer.decode(codes)
    assert decoded.dtype == torch.bfloat16
    assert (decoded.float() - pixels).abs().max() < 0.05  # bf16 keeps 8 bits: ≈ 2^-8 per layer


def test_roll_rotates_cached_keys_in_fp32():
    """Rolling a bf16 cache: the keys turn in fp32, so they stay within one bf16 rounding of fp32 rolled keys."""
    model = tiny_generator(text_size=10, codebook_size=64)
    cache = KVCache(model.config.layers, 1, model.config.kv_heads, model.config.head_dim, 200)
    cache.keys = [torch.randn_like(k) for k in cache.keys]
    cache.length = 150
    low = KVCache(model.config.layers, 1, model.config.kv_heads, model.config.head_dim, 200, dtype=torch.bfloat16)
    low.keys = [k.to(torch.bfloat16) for k in cache.keys]
    low.length = 150
    frame_ids = 4
    model_low = tiny_generator(text_size=10, codebook_size=64).to(torch.bfloat16)
    for _ in range(20):
        roll(model, cache, frame_ids)
        roll(model_low, low, frame_ids)
    error = (low.keys[0][:, :, :low.length].float() - cache.keys[0][:, :, :cache.length]).abs().max()
    assert error < 0.1, error  # 20 roundings of values ≈ N(0, 1) to bf16: each ≤ 2^-8 relative


def test_generate_and_extend_run_in_bfloat16_from_the_cli(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bf16.mp4"
    code, stdout, err = run_main(["generate", str(pipeline_dir), "a red circle moving left slowly", "-o", str(out),
                                  "--frames", "9", "--device", "cpu", "--dtype", "bfloat16"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(out)[0].shape == (9, 16, 16, 3)
    clip = tmp_path / "clip.mp4"
    write_video(clip, np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8), fps=8)
    code, _, err = run_main(["extend", str(pipeline_dir), str(clip), "-o", str(tmp_path / "longer.mp4"), "--frames",
                             "4", "--device", "cpu", "--dtype", "bf16"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "longer.mp4")[0].shape == (9, 16, 16, 3)


def test_bad_device_or_dtype_is_one_line_before_loading(pipeline_dir, tmp_path, monkeypatch, capsys):
    cases = [(["--dtype", "int8"], "unknown precision 'int8'")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "no CUDA GPU is visible here"))
    for extra, message in cases:
        code, _, err = run_main(["generate", str(pipeline_dir), "a red circle moving left slowly", "-o",
                                 str(tmp_path / "x.mp4"), *extra], monkeypatch, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.mp4").exists()
