"""The page's pure parts, without a browser: its controls → prompt and options (serve/inputs.py), the streaming step
(serve/stream.py: an update per decoded chunk, the mp4 in place only when whole) and the page's outputs of each
update (serve/app.py's `views`), with the tiny random pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_pipeline
from t2v.generator.prompts import PromptChange
from t2v.serve.inputs import OWN, Length, choices, page_options, read_prompt
from t2v.serve.stream import extend_updates, generate_updates, output_path

PROMPT = "a red circle moving left slowly"


@pytest.fixture(scope="module")
def pipeline(text):
    return tiny_pipeline(text)  # 16×16 frames, temporal stride 4, 4 latent frames a decoded chunk


def options(pipeline, frames: float, unit: str = "frames", size: str | None = "16x16", fps: str | None = "8",
            seed: int = 0):
    return page_options(pipeline, Length(frames, unit), size, fps, seed, 2.0)


def test_each_decoded_chunk_is_an_update_and_the_mp4_appears_only_when_whole(pipeline, tmp_path):
    from t2v.tokenizer.video_io import read_video

    path = tmp_path / "video.mp4"
    updates = []
    for update in generate_updates(pipeline, PROMPT, options(pipeline, 33), path):
        assert path.exists() == (update.video is not None)  # no partial file at the final name
        updates.append(update)
    # 33 frames = 9 latent frames, each decoded as soon as it is sampled (1 frame, then 4 each), then the file
    assert [(u.frames.shape, u.done, u.total, u.count) for u in updates] == [
        ((1, 16, 16, 3), 1, 33, 1), *(((4, 16, 16, 3), 1 + 4 * k, 33, k + 1) for k in range(1, 9)),
        ((4, 16, 16, 3), 33, 33, 9)]
    assert [u.video for u in updates] == [None] * 9 + [path]
    assert updates[1].frame.shape == (16, 16, 3) and np.array_equal(updates[1].frame, updates[1].frames[-1])
    assert updates[1].strip().shape == (16, 4 * 18 - 2, 3)  # the update's 4 frames, 2-pixel gaps

    expected = pipeline(PROMPT, options(pipeline, 33))[0]  # the same seed: the same frames
    assert np.array_equal(np.concatenate([u.frames for u in updates[:9]]), expected)
    written, fps = read_video(path)
    assert written.shape == (33, 16, 16, 3) and fps == 8
    gray, want = written.mean(axis=-1), expected.mean(axis=-1)  # H.264 of those frames (its 4:2:0 colour aside)
    assert np.abs(gray - want).mean() < np.abs(gray - want[::-1]).mean() / 2


def test_a_stopped_generation_leaves_no_file(pipeline, tmp_path):
    path = tmp_path / "video.mp4"
    updates = generate_updates(pipeline, PROMPT, options(pipeline, 33), path)
    assert next(updates).done == 1
    updates.close()  # what the page's Stop (or a closed tab) does to the stream
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("typed, size, fps, frames, message", [
    ("", "16x16", "8", 17, "empty prompt in ''"),
    ("  \n ", "16x16", "8", 17, "empty prompt in ''"),
    (PROMPT, "32x32", "8", 17, "size 32x32 was never trained: the generator knows sizes 16x16, 24x16 (WxH)"),
    (PROMPT, "16x16", "12", 17, "12 fps was never trained"),
    (PROMPT, "0x16", "8", 17, "size '0x16' must be positive"),
    (PROMPT, "big", "8", 17, "size 'big' is not N or WxH"),
    (PROMPT, "16x16", "8", 0, "the length must be positive, got 0"),
    (PROMPT, "16x16", "8", 2.5, "number of frames must be a whole number, got 2.5"),
    ("10:" + PROMPT, "16x16", "8", 17, "the first prompt starts at frame 10: the schedule must start at frame 0"),
    (f"{PROMPT}\n40:{PROMPT}", "16x16", "8", 17, "a prompt starts at frame 40, beyond the video's 17 frames"),
])
def test_bad_input_is_refused_with_the_cli_message_before_any_file(pipeline, tmp_path, typed, size, fps, frames,
                                                                   message):
    with pytest.raises(ValueError) as error:
        generate_updates(pipeline, read_prompt(typed), page_options(pipeline, Length(frames), size, fps, 0, 2.0),
                         tmp_path / "video.mp4")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_prompts_lengths_and_choices():
    assert read_prompt(PROMPT) == PROMPT and read_prompt(f"0:{PROMPT}") == PROMPT
    assert read_prompt(f"{PROMPT}\n\n 64: a red circle moving up slowly") == [
        PromptChange(0, PROMPT), PromptChange(64, "a red circle moving up slowly")]
    assert read_prompt("  ", required=False) is None
    assert Length(2, "seconds").frames(8) == 16 and Length(0.01, "seconds").frames(8) == 1
    assert Length(33).describe(8) == "33 frames = 4.1 s at 8 fps"
    assert Length(2, "seconds").describe(None) == "2 seconds at the video's rate"
    with pytest.raises(ValueError, match="3000 frames asked for, this server makes at most 2048"):
        Length(3000).frames(8, max_frames=2048)
    assert choices([(16, 16), (16, 24)], [8.0, 16.0], own=True) == ([OWN, "16x16", "24x16"], [OWN, "8", "16"])


def test_a_storyboard_file_is_the_prompt(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(f"- {{at: 0, prompt: {PROMPT}}}\n- {{at: 8, prompt: a red circle moving up slowly}}\n")
    assert read_prompt("", str(board)) == [PromptChange(0, PROMPT), PromptChange(8, "a red circle moving up slowly")]
    with pytest.raises(ValueError, match="give a prompt or a storyboard, not both"):
        read_prompt(PROMPT, str(board))


def test_extend_streams_the_new_frames_after_the_upload(pipeline, tmp_path):
    from t2v.tokenizer.video_io import read_video, write_video

    clip = np.concatenate(list(pipeline.generate(PROMPT, options(pipeline, 9))), axis=1)[0]
    write_video(tmp_path / "clip.mp4", clip, fps=8)
    path = tmp_path / "longer.mp4"
    updates = list(extend_updates(pipeline, tmp_path / "clip.mp4", None, options(pipeline, 17, size=OWN, fps=OWN),
                                  path))
    # 17 new frames continue 4 latent frames of 4 frames, then a fifth cut to its first frame; then the file
    assert [(u.frames.shape[0], u.done, u.total) for u in updates] == [(4, 4, 17), (4, 8, 17), (4, 12, 17),
                                                                       (4, 16, 17), (1, 17, 17), (1, 17, 17)]
    assert updates[-1].video == path
    written, fps = read_video(path)
    assert written.shape == (9 + 17, 16, 16, 3) and fps == 8  # the upload, then 17 new frames

    only_new = tmp_path / "new.mp4"
    list(extend_updates(pipeline, tmp_path / "clip.mp4", PROMPT, options(pipeline, 1, "seconds", OWN, OWN), only_new,
                        only_new=True))
    assert read_video(only_new)[0].shape == (8, 16, 16, 3)  # 1 s at the upload's 8 fps, without the upload


def test_extend_refuses_a_missing_or_broken_video(pipeline, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(FileNotFoundError, match="video not found"):
        extend_updates(pipeline, tmp_path / "none.mp4", None, options(pipeline, 9), tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="cannot read video .*broken.mp4"):
        extend_updates(pipeline, broken, None, options(pipeline, 9), tmp_path / "out.mp4")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.mp4"]


def test_the_page_shows_each_update_then_the_file(pipeline, tmp_path):
    import gradio as gr

    from t2v.serve.app import build_app, views

    shown = list(views(generate_updates(pipeline, PROMPT, options(pipeline, 33), output_path(tmp_path)),
                       "Generating"))
    assert [row[0] for row in shown] == [
        "**Generating…** sampling the first frames",
        *(f"**Generating…** frame {1 + 4 * k} of 33 (update {k + 1})" for k in range(9)),
        f"**Done:** 33 frames in 9 updates → `{next(tmp_path.glob('video-*.mp4')).name}`"]
    assert all(row[1].shape == (16, 16, 3) for row in shown[1:])
    assert shown[-1][3] == shown[-1][4] == str(next(tmp_path.glob("video-*.mp4")))  # the video and its download
    assert shown[1][3] == gr.skip()  # not re-sent while generating

    def failing():
        yield from generate_updates(pipeline, PROMPT, options(pipeline, 9), tmp_path / "x.mp4")
        raise ValueError("cannot read video x.mp4: broken")
    with pytest.raises(gr.Error, match="cannot read video x.mp4: broken"):
        list(views(failing(), "Extending"))

    app = build_app(pipeline, tmp_path, "tiny")
    dropdowns = {block.elem_id: block.choices for block in app.blocks.values() if isinstance(block, gr.Dropdown)}
    assert [value for value, _ in dropdowns["gen-size"]] == ["16x16", "24x16"]
    assert [value for value, _ in dropdowns["ext-fps"]] == [OWN, "8", "16"]
