"""recipes/shapes/verify_long.py: true long clips pass every segment (any size, after mp4), a teleport, a stop, a
reversal in mid-canvas, a colour change and a vanished object fail the right segment and attribute; the
direction change after a prompt change is found; streamed checks equal whole-video checks."""
from __future__ import annotations

import numpy as np
import pytest

from t2v.recipes.shapes.dataset import Caption, box_size, draw_frames, trajectory
from t2v.recipes.shapes.verify_long import (
    SEGMENT_ATTRIBUTES, SegmentStream, check_long_video, direction_change_frame, format_segments, score_segments,
    segment_bounds,
)
from t2v.tokenizer.video_io import read_video, write_video

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
LONG = 1025  # 16 segments of 64 frame steps
CAPTIONS = [Caption("red", "circle", "left", "slowly"), Caption("cyan", "diamond", "up", "quickly"),
            Caption("orange", "triangle", "down", "slowly"), Caption("white", "square", "right", "quickly")]


def positions(caption: Caption, frames: int = LONG, size: tuple[int, int] = (64, 64), seed: int = 0) -> np.ndarray:
    """float (T, 2) top-left positions of a true clip."""
    return trajectory(caption, frames, size, np.random.default_rng(seed))


def failures(checks) -> dict[int, set[str]]:
    """{segment index: attributes it fails} for the segments that fail."""
    return {i: {n for n in SEGMENT_ATTRIBUTES if not getattr(c, n)} for i, c in enumerate(checks) if not c.passed}


def mid_canvas_frame(track: np.ndarray, axis: int, after: int, size: int = 64) -> int:
    """The first frame ≥ `after` whose box is well away from both walls along `axis`."""
    limit = size - box_size((size, size))
    return next(t for t in range(after, len(track)) if limit / 3 < track[t, axis] < 2 * limit / 3)


# --------------------------------------------------------------------------------------------- segments
def test_segment_bounds_share_boundary_frames_and_fold_short_tails():
    assert segment_bounds(LONG) == [(64 * k, 64 * k + 65) for k in range(16)]
    assert segment_bounds(129) == [(0, 65), (64, 129)]
    assert segment_bounds(100) == [(0, 65), (64, 100)]  # a 35-step tail is a segment of its own
    assert segment_bounds(80) == [(0, 80)]  # a 15-step tail joins the segment before it
    assert segment_bounds(40, 16) == [(0, 17), (16, 40)]
    with pytest.raises(ValueError, match="at least 2 frames"):
        segment_bounds(1)


# --------------------------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda c: c.text)
def test_true_long_clips_pass_every_segment(caption):
    checks = check_long_video(draw_frames(caption, positions(caption), (64, 64)), caption)
    assert len(checks) == 16 and failures(checks) == {}
    assert sum(c.turns for c in checks) >= 10  # many bounces, all elastic
    assert all(c.max_wall_gap <= 2 and c.max_residual < 0.5 for c in checks)


def test_true_long_clip_passes_after_an_mp4_round_trip(tmp_path):
    caption = CAPTIONS[3]
    video = draw_frames(caption, positions(caption, seed=5), (64, 64))
    frames, _ = read_video(write_video(tmp_path / "long.mp4", video, fps=8))
    assert frames.shape == video.shape
    assert failures(check_long_video(frames, caption)) == {}


def test_another_size_and_a_length_off_the_grid_pass():
    caption = Caption("magenta", "triangle", "left", "quickly")
    size = (48, 80)  # s = 0.75: fractional positions, a wide canvas along the motion
    checks = check_long_video(draw_frames(caption, positions(caption, 200, size, seed=2), size), caption)
    assert [(c.start, c.stop) for c in checks] == [(0, 65), (64, 129), (128, 200)]
    assert failures(checks) == {}


def test_streamed_checks_equal_whole_video_checks():
    caption = CAPTIONS[1]
    video = draw_frames(caption, positions(caption, 300), (64, 64))
    stream, checks = SegmentStream(caption, len(video)), []
    for start in range(0, len(video), 9):  # chunks that do not line up with segments
        checks += stream.push(video[start:start + 9])
        assert len(stream._frames) <= 64 + 9
    assert stream.done and checks == check_long_video(video, caption)
    with pytest.raises(ValueError, match="more than the 300 announced"):
        stream.push(video[:1])


# --------------------------------------------------------------------------------------------- corrupted
def test_teleport_fails_bounce_in_its_segment_only():
    caption = CAPTIONS[0]  # moves along x
    track = positions(caption)
    track[300:] = trajectory(caption, LONG - 300, (64, 64), start=(int(track[300, 0]), int(track[300, 1] + 24) % 48))
    assert failures(check_long_video(draw_frames(caption, track, (64, 64)), caption)) == {4: {"bounce"}}


def test_reversal_in_mid_canvas_fails_bounce():
    caption = CAPTIONS[2]  # moves along y
    track = positions(caption)
    t = mid_canvas_frame(track, 0, after=600)
    heading = "down" if track[t + 1, 0] > track[t, 0] else "up"
    turned = Caption(caption.color, caption.shape, OPPOSITE[heading], caption.speed)
    track[t:] = trajectory(turned, LONG - t, (64, 64), start=tuple(int(p) for p in np.rint(track[t])))
    found = failures(check_long_video(draw_frames(caption, track, (64, 64)), caption))
    segments = {(t - 1) // 64, t // 64}  # the segment(s) holding the turn
    assert set(found) <= segments and found and all(attrs == {"bounce"} for attrs in found.values()), (t, found)


def test_stop_fails_bounce_then_speed():
    caption = CAPTIONS[3]
    track = positions(caption)
    t = mid_canvas_frame(track, 1, after=300)
    track[t:] = track[t]  # the object stops in mid-canvas
    found = failures(check_long_video(draw_frames(caption, track, (64, 64)), caption))
    first = t // 64
    assert set(found) == set(range(first, 16)) and 0 < first < 15, (t, found)
    assert "bounce" in found[first]
    assert all({"speed", "bounce"} <= found[k] for k in range(first + 1, 16))


def test_colour_change_fails_colour_from_its_segment_on():
    caption = CAPTIONS[0]
    video = draw_frames(caption, positions(caption), (64, 64))
    recoloured = draw_frames(Caption("green", caption.shape, caption.direction, caption.speed), positions(caption),
                             (64, 64))
    video[340:] = recoloured[340:]  # segment 5 is frames 320 … 384: mostly green
    assert failures(check_long_video(video, caption)) == {k: {"color"} for k in range(5, 16)}


def test_vanished_object_fails_its_segment():
    caption = CAPTIONS[1]
    video = draw_frames(caption, positions(caption), (64, 64))
    video[520:560] = 0  # segment 8 is frames 512 … 576
    assert failures(check_long_video(video, caption)) == {8: set(SEGMENT_ATTRIBUTES)}


# --------------------------------------------------------------------------------------------- prompt changes
def spliced(before: Caption, after: Caption, change: int = 64, frames: int = 129) -> np.ndarray:
    """A clip moving as `before` until frame `change`, then as `after` from where the object was."""
    first = trajectory(before, change + 1, (64, 64), start=(30, 40))
    second = trajectory(after, frames - change, (64, 64), start=tuple(int(p) for p in first[-1]))
    return draw_frames(before, np.concatenate([first, second[1:]]), (64, 64))


def test_direction_change_is_found_within_16_frames():
    left, up = Caption("blue", "square", "left", "slowly"), Caption("blue", "square", "up", "slowly")
    found = direction_change_frame(spliced(left, up), up, start=64)
    assert found is not None and 64 <= found <= 64 + 16
    assert direction_change_frame(spliced(left, left), up, start=64) is None  # no change
    assert direction_change_frame(spliced(left, up), Caption("blue", "square", "down", "slowly"), 64) is None


def test_direction_change_against_the_wall_ahead_counts_the_bounce():
    right, up = Caption("yellow", "circle", "right", "quickly"), Caption("yellow", "circle", "up", "quickly")
    first = trajectory(right, 65, (64, 64), start=(0, 2))  # along the top wall
    second = trajectory(up, 40, (64, 64), start=tuple(int(p) for p in first[-1]))
    video = draw_frames(up, np.concatenate([first, second[1:]]), (64, 64))
    assert direction_change_frame(video, up, start=64) == 64


# --------------------------------------------------------------------------------------------- reports
def test_score_segments_and_table():
    caption = CAPTIONS[0]
    good = check_long_video(draw_frames(caption, positions(caption, 129), (64, 64)), caption)
    bad = [*good[:1], type(good[1])(64, 129, True, False, True, True, True, True)]
    report = score_segments([good, bad, good[:1]])
    assert [row["num"] for row in report] == [3, 2] and report[1]["frames"] == [64, 129]
    assert report[0]["overall"] == 1.0 and report[1]["color"] == 0.5 and report[1]["overall"] == 0.5
    assert set(report[0]) == {"segment", "frames", *SEGMENT_ATTRIBUTES, "overall", "but_bounce", "num"}
    no_bounce = [*good[:1], type(good[1])(64, 129, True, True, True, True, True, False)]
    assert score_segments([good, no_bounce])[1]["overall"] == 0.5 == score_segments([good, bad])[1]["but_bounce"]
    assert score_segments([good, no_bounce])[1]["but_bounce"] == 1.0
    table = format_segments([{**row, "s_per_frame": 0.5} for row in report], extra=["s_per_frame"])
    assert "bounce" in table and "64-128" in table and "50.0" in table and len(table.splitlines()) == 3
    assert score_segments([]) == []
