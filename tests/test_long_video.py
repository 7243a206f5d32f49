"""Videos of any length: prompt schedules, streamed generation, extension arithmetic, `t2v generate/extend`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_main, tiny_model, tiny_pipeline
from t2v.generator.sample import SamplingConfig
from t2v.generator.prompts import PromptChange, check_schedule, load_storyboard, parse_prompt
from t2v.tokenizer.video_io import read_video, write_video

RED, UP = "a red circle moving left slowly", "a red circle moving up slowly"


@pytest.fixture(scope="module")
def pipeline(text):
    return tiny_pipeline(text)  # 5-frame 16×16 clips: 2 latent frames of 2×2, temporal stride 4, window 2


@pytest.fixture(scope="module")
def pipeline_dir(pipeline, tmp_path_factory):
    return pipeline.save_pretrained(tmp_path_factory.mktemp("pipe") / "pipeline")


def test_parse_prompt_and_storyboards(tmp_path):
    assert parse_prompt(RED) == PromptChange(0, RED)
    assert parse_prompt(f"64: {UP}") == PromptChange(64, UP)
    assert parse_prompt("a ratio 4:3 frame") == PromptChange(0, "a ratio 4:3 frame")  # only a leading FRAME:
    with pytest.raises(ValueError, match="empty prompt"):
        parse_prompt("12:  ")
    (tmp_path / "s.yaml").write_text(f"- {{at: 0, prompt: {RED}}}\n- {{at: 64, prompt: {UP}}}\n")
    (tmp_path / "s.json").write_text(json.dumps([{"at": 0, "prompt": RED}, {"at": 64, "prompt": UP}]))
    assert load_storyboard(tmp_path / "s.yaml") == load_storyboard(tmp_path / "s.json") == [
        PromptChange(0, RED), PromptChange(64, UP)]
    (tmp_path / "bad.yaml").write_text("- {at: soon, prompt: x}\n")
    with pytest.raises(ValueError, match="entry 1 must be"):
        load_storyboard(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="storyboard not found"):
        load_storyboard(tmp_path / "none.yaml")


def test_check_schedule_refuses_disorder_late_starts_and_a_missing_start():
    good = [PromptChange(0, RED), PromptChange(64, UP)]
    assert check_schedule(good, 65) == good
    with pytest.raises(ValueError, match="out of order"):
        check_schedule([PromptChange(0, RED), PromptChange(64, UP), PromptChange(32, RED)], 100)
    with pytest.raises(ValueError, match="beyond the video's 64 frames"):
        check_schedule(good, 64)
    with pytest.raises(ValueError, match="must start at frame 0"):
        check_schedule([PromptChange(8, RED)], 64)


def test_latent_start_never_shows_a_prompt_before_its_frame():
    latent_start = tiny_model().latent_frames  # (at, continued): the tokenizer's stride arithmetic, stride 4
    # a fresh video: latent 0 is frame 0, latent k ≥ 1 is frames 4k-3 … 4k
    assert [latent_start(at, continued=False) for at in (0, 1, 2, 4, 5, 64, 65)] == [0, 1, 2, 2, 2, 17, 17]
    # a continuation: latent k is frames 4k … 4k+3
    assert [latent_start(at, continued=True) for at in (0, 1, 4, 5, 64)] == [0, 1, 1, 2, 16]


def test_generate_streams_chunks_with_a_bounded_cache(pipeline, monkeypatch):
    capacities = []
    new_cache = pipeline.generator.new_cache
    monkeypatch.setattr(pipeline.generator, "new_cache", lambda batch, capacity: capacities.append(capacity) or
                        new_cache(batch, capacity))
    chunks = pipeline.generate(RED, frames=39, seed=3)
    first = next(chunks)  # frames come before the video is complete: one tokenizer chunk of 4 latent frames
    assert pipeline.video_tokenizer.config.chunk_latent_frames == 4
    assert first.shape == (1, 13, 16, 16, 3) and first.dtype == np.uint8
    rest = list(chunks)
    assert [c.shape[1] for c in rest] == [16, 10]
    assert capacities == [pipeline.generator.vocab.prefix_len + 2 * 2 * 2]  # the window of 2 latent frames
    assert np.array_equal(np.concatenate([first, *rest], axis=1), pipeline(RED, frames=39, seed=3))
    each = [chunk.shape[1] for chunk in pipeline.generate(RED, frames=39, seed=3, decode_every=1)]
    assert each == [1] + [4] * 9 + [2]  # a chunk per latent frame, as soon as it is sampled: the same pixels
    joined = np.concatenate(list(pipeline.generate(RED, frames=39, seed=3, decode_every=1)), axis=1)
    assert np.abs(joined.astype(int) - pipeline(RED, frames=39, seed=3)).max() <= 1
    with pytest.raises(ValueError, match="decode_every must be ≥ 1"):
        pipeline.generate(RED, frames=39, decode_every=0)


def test_extend_yields_exactly_the_frames_asked_for(pipeline):
    video = pipeline(RED, frames=13, seed=1)[0]
    for frames in (1, 4, 7):
        new = np.concatenate(list(pipeline.extend(video, RED, frames=frames, seed=2)), axis=1)
        assert new.shape == (1, frames, 16, 16, 3)
    # the context is the last 1 + 4k frames it may take: 8 asked → 5 used
    assert pipeline.encode_context(video, 8).shape == (1, 2, 2, 2)
    assert pipeline.encode_context(video[:3], 8).shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="no frames"):
        pipeline.encode_context(video[:0])


def test_a_schedule_changes_the_prompt_from_its_frame_on(pipeline):
    greedy = SamplingConfig(temperature=0)
    plain = pipeline(RED, frames=21, sampling=greedy)
    scheduled = np.concatenate(list(pipeline.generate([PromptChange(0, RED), PromptChange(9, UP)], frames=21,
                                                      sampling=greedy)), axis=1)
    assert scheduled.shape == plain.shape
    assert np.array_equal(scheduled[:, :9], plain[:, :9])  # latent frames 0–2 (frames 0–8) are the first prompt's


def test_cli_generate_with_a_prompt_schedule_and_extend(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "long.mp4"
    code, _, err = run_main(["generate", str(pipeline_dir), "-o", str(out), "--frames", "41", "--prompt", RED,
                             "--prompt", f"20:{UP}", "--preview"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(out)[0].shape == (41, 16, 16, 3) and (tmp_path / "long.preview.png").is_file()
    given = write_video(tmp_path / "given.mp4", np.full((11, 32, 32, 3), 40, np.uint8), fps=8)
    code, _, err = run_main(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "more.mp4"),
                             "--frames", "10", "--prompt", UP, "--size", "16"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "more.mp4")[0].shape == (21, 16, 16, 3)  # the original (resized) + 10 new
    code, _, err = run_main(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "new.gif"),
                             "--seconds", "1", "--only-new", "--context-frames", "5", "--size", "16x16"],
                            monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "new.gif")[0].shape == (8, 16, 16, 3)


def test_cli_long_video_bad_input_gives_one_line_errors(pipeline_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    out = str(tmp_path / "x.mp4")
    cases = [
        (["generate", str(pipeline_dir), "-o", out, "--frames", "80", "--prompt", RED, "--prompt", f"64:{UP}",
          "--prompt", f"32:{RED}"], "out of order"),
        (["generate", str(pipeline_dir), "-o", out, "--frames", "50", "--prompt", RED, "--prompt", f"64:{UP}"],
         "beyond the video's 50 frames"),
        (["extend", str(pipeline_dir), str(tmp_path / "broken.mp4"), "-o", out], "broken.mp4"),
        (["extend", str(pipeline_dir), str(tmp_path / "none.mp4"), "-o", out], "video not found"),
    ]
    for args, message in cases:
        code, _, err = run_main(args, monkeypatch, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("x*"))
