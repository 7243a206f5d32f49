"""bench/tokenizer_curve.py: a tiny tokenizer config learns on drawn shapes frames; rows and JSON are written."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        yield load_bench("tokenizer_curve", patch)


TINY = ["model.channels=[4,8,8]", "optim.lr=3e-3", "optim.warmup_steps=1"]


def test_drawn_batches_are_seeded_frames_or_clips(bench):
    frames, captions = bench.drawn_batch(3, 1, seed=5)
    assert frames.shape == (3, 3, 1, 64, 64) and torch.equal(frames, bench.drawn_batch(3, 1, seed=5)[0])
    assert not torch.equal(frames, bench.drawn_batch(3, 1, seed=6)[0])
    assert frames.min() == -1 and frames.max() == 1  # black background, saturated colours
    assert len(captions) == 3 and all(caption.startswith("a ") for caption in captions)
    assert bench.drawn_batch(2, 5, seed=5)[0].shape == (2, 3, 5, 64, 64)


def test_shape_accuracy_reads_the_verifier(bench):
    frames, captions = bench.drawn_batch(4, 1, seed=5)
    assert bench.shape_accuracy(frames, captions) == 1.0  # the true frames
    assert bench.shape_accuracy(-torch.ones_like(frames), captions) == 0.0  # nothing drawn
    assert 0 < bench.colour_error(frames.flip(1), frames)  # colours swapped (RGB → BGR)
    assert bench.colour_error(frames, frames) == 0.0


def test_curve_rows_and_report(bench, tmp_path, capsys):
    out = tmp_path / "curve.json"
    bench.main(["--steps", "4", "--every", "2", "--batch", "2", "--out", str(out), "--picture",
                str(tmp_path / "look.png"), *sum([["--set", o] for o in TINY], [])])
    report = json.loads(out.read_text())
    assert [row["step"] for row in report["rows"]] == [2, 4] and report["overrides"] == TINY
    assert all(5 < row["psnr"] < 60 and row["seconds_per_step"] > 0 for row in report["rows"])
    assert all(0 <= row["shape"] <= 1 and row["colour_error"] > 0 for row in report["rows"])
    assert report["rows"][0]["gflop_per_step"] > 0.01
    assert "PSNR dB" in capsys.readouterr().out
    from t2v.tokenizer.video_io import read_video
    assert read_video(tmp_path / "look.png")[0].shape == (1, 128, 512, 3)  # 8 frames above their reconstructions


def test_bypassing_the_quantizer_decodes_the_continuous_latent(bench):
    from t2v.core.config_io import apply_overrides
    from t2v.recipes.shapes import tokenizer_config
    from t2v.tokenizer.model import VideoTokenizer

    config = apply_overrides(tokenizer_config(), TINY)
    torch.manual_seed(0)
    model = VideoTokenizer(config.model).eval()
    frames, _ = bench.drawn_batch(2, 1, seed=5)
    with torch.no_grad():
        quantized = model(frames)
        bench.bypass_quantizer(model)
        bypassed = model(frames)
        continuous = model.decoder(model.encoder(frames))
    assert torch.equal(bypassed.codes, quantized.codes)  # the codes are still computed
    assert not torch.allclose(bypassed.reconstruction, quantized.reconstruction)
    assert torch.allclose(bypassed.reconstruction, continuous, atol=1e-6)
