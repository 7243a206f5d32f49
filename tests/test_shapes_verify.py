"""recipes/shapes/verify.py: ground truth passes (any size, long clips, degraded), wrong captions fail the right
attribute, and the report numbers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from t2v.recipes.shapes.dataset import (
    COLORS, DIRECTIONS, SHAPES, Caption, all_captions, draw_frames, render_clip, split_of, trajectory,
)
from t2v.recipes.shapes.verify import ATTRIBUTES, VideoCheck, check_video, format_table, score
from t2v.tokenizer.video_io import read_video, write_video

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
OTHER_SPEED = {"slowly": "quickly", "quickly": "slowly"}


def clips(step: int = 1, frames: int = 17, size: tuple[int, int] = (64, 64)) -> list[tuple[Caption, np.ndarray]]:
    """Every step-th caption (both splits) rendered with its own seed."""
    return [(c, render_clip(c, frames, size, np.random.default_rng(i))) for i, c in enumerate(all_captions()[::step])]


def pass_rate(pairs: list[tuple[Caption, np.ndarray]]) -> float:
    checks = [check_video(video, caption) for caption, video in pairs]
    return score(checks)["overall"]


# --------------------------------------------------------------------------------------------- ground truth
def test_all_captions_pass_at_64():
    pairs = clips()
    assert {split_of(c) for c, _ in pairs} == {"seen", "heldout"}
    checks = [check_video(video, caption) for caption, video in pairs]
    assert all(c.passed for c in checks), [c for c in checks if not c.passed][:3]
    first = checks[0]
    assert first.measured_color == pairs[0][0].color and first.measured_shape == pairs[0][0].shape
    assert first.iou > 0.9 and first.run_frames == 17 and first.object_fraction == 1.0


@pytest.mark.parametrize("size, frames, step", [((96, 64), 17, 4), ((64, 96), 17, 4), ((128, 128), 17, 8),
                                                ((48, 48), 17, 4), ((64, 64), 65, 4)])
def test_other_sizes_and_long_clips_pass(size, frames, step):
    assert pass_rate(clips(step, frames, size)) == 1.0


def test_string_caption_and_caption_object_agree():
    caption, video = clips(step=97)[1]
    assert check_video(video, caption.text) == check_video(video, caption)


def test_bounce_right_after_the_first_frame():
    """The object starts against the wall ahead: the run measured is the one after the bounce."""
    caption = Caption("red", "circle", "right", "quickly")
    video = draw_frames(caption, trajectory(caption, 17, (64, 64), start=(10, 47)), (64, 64))  # x: 47, 47, 45, ...
    check = check_video(video, caption)
    assert check.object and check.speed and not check.direction and check.velocity[1] < 0
    assert check_video(video, caption, either_sign=True).passed


def test_segments_of_a_long_clip_pass_with_either_sign():
    caption = Caption("cyan", "diamond", "up", "quickly")
    video = render_clip(caption, 193, (64, 64), np.random.default_rng(3))
    assert check_video(video[:64], caption).passed
    for start in range(64, 193 - 64 + 1, 64):
        assert check_video(video[start:start + 64], caption, either_sign=True).passed, start


# --------------------------------------------------------------------------------------------- degraded
def mp4_round_trip(video: np.ndarray, path, quality: int | None = None) -> np.ndarray:
    write_video(path, video, fps=8, **({} if quality is None else {"quality": quality}))
    frames, _ = read_video(path)
    return frames


def test_mp4_round_trip_passes(tmp_path):
    pairs = [(c, mp4_round_trip(v, tmp_path / f"{i}.mp4", quality=30)) for i, (c, v) in enumerate(clips(step=4))]
    assert all(v.shape == (17, 64, 64, 3) for _, v in pairs)
    assert pass_rate(pairs) >= 0.95


def test_noise_blur_and_dimming_pass():
    rng = np.random.default_rng(0)
    noisy, blurred, dim = [], [], []
    for caption, video in clips(step=4):
        noisy.append((caption, np.clip(video + rng.normal(0, 25, video.shape), 0, 255).astype(np.uint8)))
        blurred.append((caption, ndimage.gaussian_filter(video.astype(float), (0, 1, 1, 0)).round().astype(np.uint8)))
        dim.append((caption, (video * 0.6).astype(np.uint8)))
    assert pass_rate(noisy) >= 0.95
    assert pass_rate(blurred) >= 0.95
    assert pass_rate(dim) >= 0.95


# --------------------------------------------------------------------------------------------- failures
def failed(check: VideoCheck) -> set[str]:
    return {name for name in ATTRIBUTES if not getattr(check, name)}


@pytest.mark.parametrize("index", [0, 37, 101, 166, 255])
def test_a_wrong_attribute_fails_only_that_attribute(index):
    caption = all_captions()[index]
    video = render_clip(caption, 17, (64, 64), np.random.default_rng(index))
    assert check_video(video, caption).passed
    colour = COLORS[(COLORS.index(caption.color) + 3) % len(COLORS)]
    shape = SHAPES[(SHAPES.index(caption.shape) + 1) % len(SHAPES)]
    turned = list(DIRECTIONS)[(list(DIRECTIONS).index(caption.direction) + 2) % 4]  # the other axis
    for field, value, attribute in (("color", colour, "color"), ("shape", shape, "shape"),
                                    ("direction", OPPOSITE[caption.direction], "direction"),
                                    ("direction", turned, "direction"), ("speed", OTHER_SPEED[caption.speed], "speed")):
        wrong = dataclasses.replace(caption, **{field: value})
        assert failed(check_video(video, wrong)) == {attribute}, (caption.text, wrong.text)
    opposite = dataclasses.replace(caption, direction=OPPOSITE[caption.direction])
    assert check_video(video, opposite, either_sign=True).passed  # either_sign: only the axis counts


def test_missing_object_fails_everything():
    check = check_video(np.zeros((17, 64, 64, 3), np.uint8), "a red circle moving left slowly")
    assert failed(check) == set(ATTRIBUTES) and not check.passed and check.object_fraction == 0.0
    json_ready = check.to_dict()
    assert json_ready["passed"] is False and json_ready["object"] is False


def test_object_in_too_few_frames_fails():
    caption = Caption("green", "square", "down", "slowly")
    video = render_clip(caption, 17, (64, 64), np.random.default_rng(0))
    video[::2] = 0  # the object vanishes in every other frame
    assert failed(check_video(video, caption)) == set(ATTRIBUTES)


def test_frozen_object_fails_motion():
    for caption in (Caption("blue", "triangle", "left", "slowly"), Caption("white", "square", "up", "quickly")):
        video = render_clip(caption, 17, (64, 64), np.random.default_rng(1))
        frozen = np.repeat(video[:1], 17, axis=0)
        check = check_video(frozen, caption)
        assert check.object and check.color and check.shape and not check.passed
        assert not check.direction and check.velocity == pytest.approx((0.0, 0.0), abs=1e-9)


def test_random_noise_and_two_objects_fail():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (17, 64, 64, 3), dtype=np.uint8)
    assert not check_video(noise, "a red circle moving left slowly").passed
    caption = Caption("red", "circle", "left", "slowly")
    video = render_clip(caption, 17, (64, 64), np.random.default_rng(0))
    twins = np.maximum(video, np.roll(video, 32, axis=1))  # a second, equal object half a canvas away
    assert not check_video(twins, caption).object


def test_bad_input_raises():
    with pytest.raises(ValueError, match="uint8"):
        check_video(np.zeros((17, 64, 64, 3), np.float32), "a red circle moving left slowly")
    with pytest.raises(ValueError, match="T >= 2"):
        check_video(np.zeros((1, 64, 64, 3), np.uint8), "a red circle moving left slowly")
    with pytest.raises(ValueError, match="caption"):
        check_video(np.zeros((2, 64, 64, 3), np.uint8), "a red blob")


# --------------------------------------------------------------------------------------------- reports
def test_score_and_table():
    def make(*flags: bool) -> VideoCheck:
        return VideoCheck(*flags)

    checks = [make(True, True, True, True, True), make(True, False, True, True, True),
              make(True, True, True, False, False), make(False, False, False, False, False)]
    report = score(checks)
    stderr = report.pop("overall_stderr")
    assert report == {"object": 0.75, "color": 0.5, "shape": 0.75, "direction": 0.5, "speed": 0.5,
                      "overall": 0.25, "num": 4}
    assert stderr == pytest.approx((0.25 * 0.75 / 4) ** 0.5)  # 0.2165: one pass in four says little
    report["overall_stderr"] = stderr
    empty = score([])
    assert empty["num"] == 0 and empty["overall"] is None and empty["overall_stderr"] is None
    table = format_table({"seen": report, "heldout": empty})
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["split", *ATTRIBUTES, "overall", "±", "n"]
    assert lines[1].split() == ["seen", "75.0", "50.0", "75.0", "50.0", "50.0", "25.0", "21.7", "4"]
    assert lines[2].split() == ["heldout", "-", "-", "-", "-", "-", "-", "-", "0"]


# --------------------------------------------------------------------------------------------- frame rates
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_true_clips_at_16_fps_pass_when_checked_at_16_fps(size):
    pairs = [(c, render_clip(c, 17, size, np.random.default_rng(i), fps=16))
             for i, c in enumerate(all_captions()[::8])]
    checks = [check_video(video, caption, fps=16) for caption, video in pairs]
    assert all(c.passed for c in checks), [c for c in checks if not c.passed][:3]


def test_a_wrong_speed_for_the_rate_fails_speed_only():
    caption = Caption("red", "circle", "right", "slowly")
    at_8 = render_clip(caption, 17, (64, 64), np.random.default_rng(0), fps=8)  # 1 px/frame
    # 1 px/frame at 16 fps is 16 px/s: twice "slowly", i.e. "quickly" there
    verdict = check_video(at_8, caption, fps=16)
    assert not verdict.speed and verdict.direction and verdict.color and verdict.shape
    assert check_video(at_8, dataclasses.replace(caption, speed="quickly"), fps=16).passed
    quick_at_16 = render_clip(dataclasses.replace(caption, speed="quickly"), 17, (64, 64),
                              np.random.default_rng(0), fps=16)
    assert not check_video(quick_at_16, "a red circle moving right quickly").speed  # read as 8 fps: slowly
    with pytest.raises(ValueError, match="fps must be positive"):
        check_video(at_8, caption, fps=0)
