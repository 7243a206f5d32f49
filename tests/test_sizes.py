"""Sizes and frame rates at generation: trained ones are honoured, others refused (one line naming the trained
ones) unless forced, in the `TextToVideo` API and in `t2v generate` / `t2v extend`.

The tiny pipeline's generator knows latent grids 2×2 and 2×3 (16x16 and 24x16 frames, WxH) at 8 and 16 fps.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_main, tiny_pipeline
from t2v.generator.sample import SamplingConfig
from t2v.tokenizer.video_io import read_video, write_video

RED = "a red circle moving left slowly"
TRAINED = "sizes 16x16, 24x16 (WxH) and rates 8, 16 fps"


@pytest.fixture(scope="module")
def pipeline(text):
    return tiny_pipeline(text)


@pytest.fixture(scope="module")
def pipeline_dir(pipeline, tmp_path_factory):
    return pipeline.save_pretrained(tmp_path_factory.mktemp("sizes") / "pipeline")


def test_a_trained_non_square_size_and_rate_give_frames_of_that_size(pipeline, monkeypatch):
    seen = []
    real = pipeline._schedule
    monkeypatch.setattr(pipeline, "_schedule", lambda *args, **kwargs: seen.append(args[3]) or real(*args, **kwargs))
    video = pipeline(RED, frames=5, size=(16, 24), fps=16, seed=0)
    assert video.shape == (1, 5, 16, 24, 3)
    assert seen == [((2, 3), 16)]  # the prefix names the 2×3 grid at 16 fps
    prefix = pipeline.prefixes([RED], (2, 3), 16)[0]
    vocab = pipeline.generator.vocab
    assert prefix[-3:-1].tolist() == [vocab.size_start + 1, vocab.rate_start + 1]


def test_size_and_rate_change_the_video(pipeline):
    greedy = SamplingConfig(temperature=0, cfg_scale=2.0)
    at_8, at_16 = (pipeline(RED, frames=5, fps=fps, sampling=greedy) for fps in (8, 16))
    assert not np.array_equal(at_8, at_16)


def test_untrained_size_or_rate_is_one_line_naming_the_trained_ones(pipeline):
    cases = [(dict(size=(16, 32)), "size 32x16 was never trained"), (dict(fps=12), "12 fps was never trained"),
             (dict(size=(32, 32), fps=30), "size 32x32 and 30 fps were never trained")]
    for options, message in cases:
        with pytest.raises(ValueError) as error:
            pipeline(RED, frames=5, **options)
        text = str(error.value)
        assert text.startswith(message) and TRAINED in text and "--force" in text and "\n" not in text
    with pytest.raises(ValueError, match="not divisible"):  # a size the tokenizer's strides refuse, as before
        pipeline(RED, frames=5, size=(20, 16))


def test_forced_size_and_rate_use_the_nearest_trained_ids_with_a_warning(pipeline):
    with pytest.warns(UserWarning, match="size 40x16 and 12 fps were never trained: conditioning on the nearest "
                                         "trained size 24x16 at 16 fps"):
        assert pipeline.condition_for((16, 40), 12, force=True) == ((2, 3), 16)
    with pytest.warns(UserWarning, match="nearest trained size 16x16 at 8 fps"):
        video = pipeline(RED, frames=5, size=(32, 32), fps=9, force=True)
    assert video.shape == (1, 5, 32, 32, 3)  # the size asked for, conditioned on the nearest trained one


def test_extend_checks_the_video_size_and_rate(pipeline):
    video = np.full((9, 16, 24, 3), 60, np.uint8)
    chunks = list(pipeline.extend(video, RED, frames=4, fps=16))
    assert np.concatenate(chunks, axis=1).shape == (1, 4, 16, 24, 3)
    with pytest.raises(ValueError, match="size 32x32 was never trained"):
        pipeline.extend(np.full((9, 32, 32, 3), 60, np.uint8), RED, frames=4)
    resized = np.concatenate(list(pipeline.extend(np.full((9, 32, 32, 3), 60, np.uint8), RED, frames=4,
                                                  size=(16, 16))), axis=1)
    assert resized.shape == (1, 4, 16, 16, 3)


def test_cli_generate_size_fps_and_force(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "wide.mp4"
    code, stdout, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(out), "--size", "24x16", "--fps",
                                  "16", "--frames", "5"], monkeypatch, capsys)
    assert code == 0, err
    assert "5 frames of 24x16 at 16 fps" in stdout
    frames, fps = read_video(out)
    assert frames.shape == (5, 16, 24, 3) and fps == pytest.approx(16)
    bad = tmp_path / "bad.mp4"
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(bad), "--size", "32x16"], monkeypatch,
                            capsys)
    assert code == 2 and err.count("\n") == 1 and "size 32x16 was never trained" in err and TRAINED in err
    assert not bad.exists()
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(bad), "--size", "32x16", "--fps", "12",
                             "--frames", "5", "--force"], monkeypatch, capsys)
    assert code == 0 and "Warning: size 32x16 and 12 fps were never trained" in err
    assert read_video(bad)[0].shape == (5, 16, 32, 3)


def test_cli_extend_takes_the_input_size_and_rate_through_the_check(pipeline_dir, tmp_path, monkeypatch, capsys):
    given = write_video(tmp_path / "given.mp4", np.full((9, 16, 24, 3), 40, np.uint8), fps=16)
    code, stdout, err = run_main(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "more.mp4"),
                                  "--frames", "4"], monkeypatch, capsys)
    assert code == 0, err
    assert "of 24x16 at 16 fps" in stdout
    frames, fps = read_video(tmp_path / "more.mp4")
    assert frames.shape == (13, 16, 24, 3) and fps == pytest.approx(16)
    odd = write_video(tmp_path / "odd.mp4", np.full((9, 16, 16, 3), 40, np.uint8), fps=10)
    code, _, err = run_main(["extend", str(pipeline_dir), str(odd), "-o", str(tmp_path / "x.mp4")], monkeypatch,
                            capsys)
    assert code == 2 and "10 fps was never trained" in err and err.count("\n") == 1
    assert not (tmp_path / "x.mp4").exists()
    code, _, err = run_main(["extend", str(pipeline_dir), str(odd), "-o", str(tmp_path / "y.mp4"), "--frames", "4",
                             "--fps", "8"], monkeypatch, capsys)
    assert code == 0, err  # resampled to a trained rate
    assert read_video(tmp_path / "y.mp4")[1] == pytest.approx(8)


def test_old_format_generator_checkpoints_are_refused(pipeline, tmp_path):
    import json

    from t2v.generator.model import VideoGenerator

    directory = pipeline.generator.save_pretrained(tmp_path / "g")
    config = json.loads((directory / "config.json").read_text())
    del config["sizes"], config["rates"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="old-format generator.*retrain"):
        VideoGenerator.from_pretrained(directory)
