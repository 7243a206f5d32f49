"""recipes/shapes/dataset.py: captions, held-out rule, motion law, rendering, and the written dataset."""
from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest

from t2v.recipes.shapes.dataset import (
    PALETTE, Caption, all_captions, box_size, captions_of_split, is_heldout, make_dataset, render_clip,
    shape_mask, split_of, trajectory,
)
from t2v.tokenizer.video_io import read_video


def object_mask(frame: np.ndarray) -> np.ndarray:
    return frame.max(axis=-1) > 60


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return ys.min(), xs.min(), ys.max(), xs.max()


def test_palette_and_captions():
    assert list(PALETTE.items())[0] == ("red", (255, 0, 0)) and PALETTE["orange"] == (255, 128, 0)
    assert list(PALETTE) == ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "orange"]
    captions = all_captions()
    assert len(captions) == len(set(captions)) == 256
    caption = Caption.parse("a red circle moving left slowly")
    assert caption == Caption("red", "circle", "left", "slowly") and caption.text == "a red circle moving left slowly"
    assert all(Caption.parse(c.text) == c for c in captions)
    for bad in ("a purple circle moving left slowly", "a red circle moving", "red circle moving left slowly"):
        with pytest.raises(ValueError, match="caption|unknown"):
            Caption.parse(bad)


def test_heldout_rule_count():
    # independently: for each (shape, direction) exactly one colour index c solves c ≡ -(2s + 3d) (mod 8)
    expected = {(c, s, d) for s, d in product(range(4), range(4)) for c in [(-(2 * s + 3 * d)) % 8]}
    colors, shapes, directions = list(PALETTE), ["circle", "square", "triangle", "diamond"], ["left", "right", "up", "down"]
    got = {(colors.index(c), shapes.index(s), directions.index(d))
           for c, s, d in product(colors, shapes, directions) if is_heldout(c, s, d)}
    assert got == expected and len(got) == 16
    assert is_heldout("red", "circle", "left")  # 0 + 0 + 0
    assert not is_heldout("green", "circle", "left")
    assert len(captions_of_split("heldout")) == 32 and len(captions_of_split("seen")) == 224
    assert split_of(Caption("red", "circle", "left", "quickly")) == "heldout"


@pytest.mark.parametrize("size", [(64, 64), (48, 96)])
def test_bounce_keeps_the_box_inside_for_a_long_clip(size):
    for direction, speed in product(["left", "right", "up", "down"], ["slowly", "quickly"]):
        caption = Caption("white", "square", direction, speed)
        frames = render_clip(caption, 1025, size, np.random.default_rng(1))
        box = box_size(size)
        assert frames.shape == (1025, *size, 3)
        assert (object_mask(frames).sum(axis=(1, 2)) == box * box).all()  # never clipped by an edge
        positions = trajectory(caption, 1025, size, np.random.default_rng(1))
        assert positions.min() >= 0 and (positions.max(axis=0) <= np.array(size) - box).all()
        axis = 0 if direction in ("up", "down") else 1
        step = {"slowly": 1, "quickly": 2}[speed] * min(size) / 64
        assert np.ptp(positions[:, axis]) >= size[axis] - box - step  # it reaches both walls (within a step)


def test_speed_direction_and_start_rule():
    size = (64, 64)
    for seed in range(20):
        for direction, speed in product(["left", "right", "up", "down"], ["slowly", "quickly"]):
            caption = Caption("red", "circle", direction, speed)
            positions = trajectory(caption, 17, size, np.random.default_rng(seed))
            step = {"slowly": 1, "quickly": 2}[speed]
            delta = {"left": (0, -step), "right": (0, step), "up": (-step, 0), "down": (step, 0)}[direction]
            np.testing.assert_allclose(np.diff(positions, axis=0), np.tile(delta, (16, 1)))  # no bounce in 17 frames
            assert ((positions > 0) & (positions < 48) | (np.array(delta) == 0)).all()  # never touches the wall ahead


def test_other_coordinate_covers_its_range():
    starts = [trajectory(Caption("red", "circle", "right", "slowly"), 1, rng=np.random.default_rng(i))[0]
              for i in range(400)]
    ys = np.array(starts)[:, 0]
    assert ys.min() <= 2 and ys.max() >= 46  # uniform over 0..48
    xs = np.array(starts)[:, 1]
    assert xs.max() <= 31  # 31 + 16 < 48


def test_shapes_are_drawn_in_their_box():
    for shape, fill in (("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5), ("diamond", 0.5)):
        mask = shape_mask(shape, 16)
        assert mask.mean() == pytest.approx(fill, abs=0.08)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    triangle = shape_mask("triangle", 16)
    assert triangle[0].sum() < triangle[-1].sum() == 16  # apex up, base at the bottom
    frames = render_clip("a green triangle moving down quickly", 5, (64, 64), np.random.default_rng(0))
    colours = {tuple(c) for c in frames.reshape(-1, 3)}
    assert colours == {(0, 0, 0), (0, 255, 0)}


def test_determinism_and_non_square(tmp_path):
    a = render_clip("a blue diamond moving up slowly", 17, (40, 80), np.random.default_rng(3))
    b = render_clip("a blue diamond moving up slowly", 17, (40, 80), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (17, 40, 80, 3)
    top, left, bottom, right = bbox(object_mask(a[0]))
    assert (bottom - top + 1, right - left + 1) == (10, 10)  # 16 · 40/64


def test_make_dataset_and_mp4_colours(tmp_path):
    index = make_dataset(tmp_path / "a", num=8, frames=9, seed=5)
    again = make_dataset(tmp_path / "b", num=8, frames=9, seed=5)
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    assert rows == [json.loads(line) for line in again.read_text().splitlines()]
    assert len(rows) == 8 and all(r["split"] == split_of(Caption.parse(r["caption"])) for r in rows)
    assert (tmp_path / "a" / rows[0]["path"]).read_bytes() == (tmp_path / "b" / rows[0]["path"]).read_bytes()
    for row in rows:
        video, fps = read_video(tmp_path / "a" / row["path"])
        assert video.shape == (9, 64, 64, 3) and fps == 8
        caption = Caption.parse(row["caption"])
        inside = np.stack([object_mask(f) for f in video])
        # yuv420p halves the chroma resolution: the blob's rim is blended, its mean is still nearest its colour
        palette = np.array(list(PALETTE.values()))
        blob_mean = video[inside].mean(axis=0)
        assert list(PALETTE)[np.argmin(np.abs(palette - blob_mean).sum(axis=1))] == caption.color
        for _ in range(2):  # erode twice: the object's inner pixels keep the palette colour within a few levels
            inside = inside & np.roll(inside, 1, 1) & np.roll(inside, -1, 1) & np.roll(inside, 1, 2) & np.roll(inside, -1, 2)
        core_mean = video[inside].mean(axis=0)
        assert np.abs(core_mean - PALETTE[caption.color]).max() <= 12, (caption, core_mean)
    heldout = make_dataset(tmp_path / "h", num=5, frames=3, seed=1, split="heldout")
    assert {json.loads(line)["split"] for line in heldout.read_text().splitlines()} == {"heldout"}


def test_motion_per_second_is_the_same_at_16_fps():
    caption = Caption("red", "circle", "right", "quickly")
    at_8 = trajectory(caption, 17, (64, 64), start=(10, 0))
    at_16 = trajectory(caption, 33, (64, 64), start=(10, 0), fps=16)
    np.testing.assert_allclose(np.diff(at_16, axis=0), np.tile((0, 1.0), (32, 1)))  # half the pixels a frame
    np.testing.assert_allclose(at_16[32] - at_16[0], at_8[16] - at_8[0])  # the same ground in 2 s


def test_make_dataset_with_two_sizes_and_two_rates(tmp_path):
    index = make_dataset(tmp_path / "m", num=8, frames=5, seed=2, sizes=[(64, 64), (64, 96)], rates=[8, 16])
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    variants = [(tuple(row["size"]), row["fps"]) for row in rows]
    assert variants == [((64, 64), 8.0), ((64, 64), 16.0), ((64, 96), 8.0), ((64, 96), 16.0)] * 2
    for row in rows[:4]:
        video, fps = read_video(tmp_path / "m" / row["path"])
        assert video.shape == (5, *row["size"], 3) and fps == pytest.approx(row["fps"])
    single = make_dataset(tmp_path / "s", num=2, frames=5, seed=2)  # the default: 64×64 at 8 fps, recorded
    assert [json.loads(line)["fps"] for line in single.read_text().splitlines()] == [8.0, 8.0]


def test_make_dataset_nested_like_the_recipe_and_replaced_only_with_overwrite(tmp_path):
    data = tmp_path / "data"
    make_dataset(data, num=2, frames=2, size=(16, 16), seed=0)
    make_dataset(data / "long", num=1, frames=3, size=(16, 16), seed=1)  # recipes/shapes/run.py's second call
    assert len((data / "long" / "index.jsonl").read_text().splitlines()) == 1
    with pytest.raises(FileExistsError, match="already holds a shapes dataset"):
        make_dataset(data, num=1, frames=2, size=(16, 16))
    make_dataset(data, num=1, frames=2, size=(16, 16), overwrite=True)  # replaced whole, the nested one too
    assert sorted(p.name for p in data.iterdir()) == [".t2v-dataset", "index.jsonl", "videos"]
    for size in ((15, 16), (16, 14), (8, 8)):
        with pytest.raises(ValueError, match="must be even .* and at least 16"):
            make_dataset(tmp_path / "bad", num=1, size=size)
    assert not (tmp_path / "bad").exists()
