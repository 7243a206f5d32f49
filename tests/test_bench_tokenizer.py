"""bench/tokenizer.py on a given tokenizer and folder of videos, and the two reference reconstructions."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import load_bench, tiny_model
from t2v.tokenizer.metrics import downsampled, mean_colour, psnr
from t2v.tokenizer.video_io import read_video, write_video


def test_reference_reconstructions():
    colours = torch.rand(2, 3, 4, 1, 1) * 2 - 1  # each frame one colour: both references keep it exactly
    flat = colours.expand(2, 3, 4, 16, 24)
    assert torch.allclose(downsampled(flat, 8), flat, atol=1e-6)
    assert torch.allclose(mean_colour(flat), flat, atol=1e-6) and (psnr(flat, mean_colour(flat)) > 100).all()
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 1, 64, 64)  # smooth: down-sampling keeps more than the mean
    assert psnr(ramp, downsampled(ramp, 8)) > psnr(ramp, mean_colour(ramp)) + 10


def test_bench_measures_a_given_tokenizer_on_a_folder_of_videos(tmp_path, monkeypatch):
    bench = load_bench("tokenizer", monkeypatch)
    tokenizer = tiny_model().save_pretrained(tmp_path / "tok")
    videos = tmp_path / "videos"
    videos.mkdir()
    ramp = np.linspace(0, 255, 24, dtype=np.uint8)[None, :, None, None].repeat(24, 2).repeat(3, 3)
    for i in range(3):
        write_video(videos / f"clip{i}.mp4", np.roll(ramp, i, axis=2).repeat(9, axis=0), fps=8)
    (videos / "notes.txt").write_text("not a video")
    report = bench.main(["--tokenizer", str(tokenizer), "--videos", str(videos), "--size", "16", "16", "--frames",
                         "5", "--out", str(tmp_path / "out"), "--name", "t", "--device", "cpu"])
    assert report["eval_clips"] == 3 and report["clip"] == [5, 16, 16]
    assert report["psnr_downsampled_db"] > report["psnr_mean_colour_db"]  # smooth ramps: as above
    for key in ("heldout_psnr_db", "heldout_ssim", "codebook_usage", "perplexity", "encode_fps", "decode_fps"):
        assert report[key] > 0, key
    assert json.loads((tmp_path / "out" / "t.json").read_text())["eval_clips"] == 3
    assert (tmp_path / "out" / "t_reconstructions.gif").is_file()
    picture = read_video(tmp_path / "out" / "t_reconstructions.png")[0]
    gif = read_video(tmp_path / "out" / "t_reconstructions.gif")[0]
    assert picture.shape[0] == 1 and picture.shape[2] == 3 * gif.shape[2]  # three frames side by side
    with pytest.raises(SystemExit):
        bench.main(["--tokenizer", str(tokenizer)])  # --videos missing: a usage error
