"""recipes/stills: the photographs and their split, the motions, captions, clips drawn per (seed, step, item), the
written dataset, the motion check, the recipe's configs."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from conftest import run_main
from t2v.recipes import registry
from t2v.recipes.stills import DRAW_CLIPS, motion, photos
from t2v.recipes.stills.contact_sheet import kind_clips, main as contact_sheet_main
from t2v.recipes.stills.dataset import DIRECTIONS, KINDS, Caption, draw_caption, draw_clips, render_clip
from t2v.recipes.stills.verify import check_clip
from t2v.tokenizer.drawn import DrawnClips
from t2v.tokenizer.video_io import read_video

MAGENTA = np.array([255, 0, 255], np.uint8)  # no photo has a pixel of it (checked below)


def true_clip(kind: str, split: str, side: int, fps: float, seed: int = 0, frames: int = 17):
    """A caption of `kind` on photos of `split` and its clip, drawn from a generator seeded by the arguments."""
    rng = np.random.default_rng([seed, KINDS.index(kind), int(split == "heldout"), side, int(fps)])
    caption = draw_caption(rng, split, kind)
    return caption, render_clip(caption, frames, (side, side), rng, fps)


def test_photos_load_offline_as_rgb_uint8(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    photos.load.cache_clear()
    try:
        for name in photos.NAMES:
            image = photos.load(name)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
            assert 256 <= min(image.shape[:2]) <= photos.MAX_SIDE and not image.flags.writeable, name
            grey = (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
            assert grey == photos.photo(name).grey, name
            assert not (image == MAGENTA).all(axis=-1).any(), name
    finally:
        photos.load.cache_clear()
    assert len({p.phrase for p in photos.PHOTOS}) == len(photos.PHOTOS) == 17
    with pytest.raises(ValueError, match="unknown photo 'lily'"):
        photos.photo("lily")


def test_split_rule():
    heldout, seen = photos.names_of_split("heldout"), photos.names_of_split("seen")
    assert sorted(heldout) == ["camera", "cat", "gravel", "hubble", "tissue"]
    assert set(heldout).isdisjoint(seen) and set(heldout) | set(seen) == set(photos.NAMES)
    assert {photos.photo(name).grey for name in heldout} == {True, False}  # not all grey, not all colour
    for grey in (True, False):  # the rule, recomputed: every fourth from the second, per colour class by name
        same = sorted(p.name for p in photos.PHOTOS if p.grey == grey)
        assert [name for name in same if photos.split_of(name) == "heldout"] == same[1::4]
    with pytest.raises(ValueError, match="use seen, heldout or all"):
        photos.names_of_split("train")


def test_captions_name_the_motion_and_the_photo():
    words = {"still": "still shot", "pan": "pans", "tilt": "tilts", "zoom": "zooms", "rotate": "rotates",
             "shake": "shakes", "parallax": "past", "occlusion": "slides", "cut": "a cut from"}
    for kind in KINDS:
        for direction in DIRECTIONS.get(kind, (None,)):
            second = "rocket" if kind in ("parallax", "occlusion", "cut") else None
            caption = Caption(kind, direction, "coffee", second)
            text = caption.text
            assert Caption.parse(text) == caption and Caption.parse(text.upper() + " ") == caption
            assert words[kind] in text and "a cup of coffee" in text and (second is None or "a rocket" in text)
            assert direction is None or direction in text
    assert Caption("pan", "left", "cat").text == "the camera pans left over a cat"
    assert Caption("zoom", "in", "rocket").text == "the camera zooms in on a rocket"
    assert Caption("cut", None, "coffee", "motorcycle").text == "a cut from a cup of coffee to a motorcycle"
    for bad in ("the camera pans up over a cat", "the camera pans left over a dog", "a cat"):
        with pytest.raises(ValueError, match="outside the stills grammar"):
            Caption.parse(bad)
    for kind, direction, second in (("cut", None, None), ("pan", "up", None), ("still", None, "cat")):
        with pytest.raises(ValueError, match="motion"):
            Caption(kind, direction, "coffee", second)


def test_motion_per_second_is_the_same_at_any_rate_and_size():
    slow = motion.pan("left", 0.2, 9, 8.0, (64, 64))
    fast = motion.pan("left", 0.2, 17, 16.0, (64, 64))
    np.testing.assert_allclose(slow.offset[8], fast.offset[16])  # after 1 s: 0.2 × 64 px to the left
    np.testing.assert_allclose(slow.offset[8], [-12.8, 0])
    np.testing.assert_allclose(motion.pan("up", 0.2, 9, 8.0, (128, 96)).offset[8], [0, -25.6])  # frame heights
    np.testing.assert_allclose(motion.zoom("in", 0.3, 17, 16.0).zoom[16], np.exp(-0.3))
    np.testing.assert_allclose(motion.roll("clockwise", 10, 9, 8.0).angle[8], np.radians(10))


def test_clips_are_deterministic_per_seed_step_and_item():
    first = list(draw_clips(num=4, frames=5, size=(32, 32), seed=3))
    again = list(draw_clips(num=4, frames=5, size=(32, 32), seed=3))
    for (row, clip), (row2, clip2) in zip(first, again):
        assert row == row2 and np.array_equal(clip, clip2)
        assert clip.shape == (5, 32, 32, 3) and clip.dtype == np.uint8
    assert all(not np.array_equal(a[1], b[1]) for a, b in zip(first, first[1:]))
    other = next(iter(draw_clips(num=1, frames=5, size=(32, 32), seed=4)))
    assert not np.array_equal(other[1], first[0][1])
    # the tokenizer's data.drawn convention: item i of epoch e from seed (seed, e, i)
    drawn = DrawnClips(DRAW_CLIPS, num_frames=5, size=(32, 32), split="seen", seed=0)
    item = drawn[7]
    assert item["video"].shape == (3, 5, 32, 32) and item["caption"]
    assert np.array_equal(drawn[7]["video"], item["video"]) and not np.array_equal(drawn[8]["video"], item["video"])
    drawn.set_epoch(1)
    assert not np.array_equal(drawn[7]["video"], item["video"])


def test_heldout_photos_never_appear_in_training_clips(monkeypatch):
    rows = [row for row, _ in draw_clips(num=90, frames=1, size=(16, 16), seed=5, split="seen")]
    assert {row["split"] for row in rows} == {"seen"} and {row["motion"] for row in rows} == set(KINDS)
    assert set().union(*(row["photos"] for row in rows)) <= set(photos.names_of_split("seen"))
    # by pixels: held-out photos become pure magenta, which no photo holds, and must never show in a seen clip
    real = photos.load

    def poisoned(name: str) -> np.ndarray:
        image = real(name)
        return np.broadcast_to(MAGENTA, image.shape) if photos.split_of(name) == "heldout" else image

    monkeypatch.setattr(photos, "load", poisoned)
    for split, seed in (("seen", 6), ("heldout", 7)):
        for row, clip in draw_clips(num=40, frames=3, size=(32, 32), seed=seed, split=split):
            magenta = (clip == MAGENTA).all(axis=-1).mean()
            assert (magenta == 0) if split == "seen" else (magenta > 0.5), row


@pytest.mark.parametrize("kind", KINDS)
def test_the_motion_check_passes_true_clips_of_every_kind(kind):
    results = []
    for split, side, fps in [(split, side, fps) for split in ("seen", "heldout") for side in (64, 128)
                             for fps in (8.0, 16.0)]:
        caption, clip = true_clip(kind, split, side, fps)
        assert clip.shape == (17, side, side, 3) and clip.dtype == np.uint8 and clip.std() > 1
        assert photos.split_of(caption.photo) == split
        results.append(check_clip(clip, caption, fps)["passed"])
    assert np.mean(results) >= 0.95, results


def test_the_motion_check_fails_wrong_captions():
    wrong = {"pan": ("left", "right"), "tilt": ("up", "down"), "zoom": ("in", "out"),
             "rotate": ("clockwise", "counterclockwise"), "occlusion": ("left", "right")}
    for kind, (direction, other) in wrong.items():
        for side, fps in ((64, 8.0), (128, 16.0)):
            rng = np.random.default_rng([1, side])
            second = "rocket" if kind == "occlusion" else None
            clip = render_clip(Caption(kind, direction, "coffee", second), 17, (side, side), rng, fps)
            assert check_clip(clip, Caption(kind, direction, "coffee", second), fps)["passed"]
            assert not check_clip(clip, Caption(kind, other, "coffee", second), fps)["passed"], (kind, side)
    still = render_clip(Caption("still", None, "astronaut"), 17, (64, 64), np.random.default_rng(0))
    result = check_clip(still, "the camera pans left over an astronaut")
    assert not result["passed"] and result["measured"] == "still"
    assert not check_clip(still, "a cut from an astronaut to a rocket")["passed"]
    cut = render_clip(Caption("cut", None, "astronaut", "rocket"), 17, (64, 64), np.random.default_rng(0))
    assert check_clip(cut, "a cut from an astronaut to a rocket")["passed"]
    assert not check_clip(cut, "a still shot of an astronaut")["passed"]
    pan = render_clip(Caption("pan", "right", "grass"), 17, (64, 64), np.random.default_rng(0))
    assert not check_clip(pan, "a hand-held camera shakes over grass")["passed"]
    with pytest.raises(ValueError, match="at least 2 frames"):
        check_clip(still[:1], "a still shot of an astronaut")


def test_data_stills_writes_an_index_and_mp4s(tmp_path, monkeypatch, capsys):
    out = tmp_path / "stills"
    code, stdout, err = run_main(["data", "stills", str(out), "--num", "3", "--frames", "5", "--size", "64",
                                  "--seed", "2", "--split", "heldout"], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and len(list((out / "videos").glob("*.mp4"))) == 3 and "heldout 3" in stdout
    for row in rows:
        assert row["split"] == "heldout" and set(row["photos"]) <= set(photos.names_of_split("heldout"))
        assert Caption.parse(row["caption"]).kind == row["motion"] and row["size"] == [64, 64]
        video, fps = read_video(out / row["path"])
        assert video.shape == (5, 64, 64, 3) and fps == 8
    code, _, err = run_main(["data", "prepare", "stills", str(out), str(tmp_path / "prepared.jsonl")], monkeypatch,
                            capsys)
    prepared = [json.loads(line) for line in (tmp_path / "prepared.jsonl").read_text().splitlines()]
    assert code == 0 and [(p["caption"], p["motion"], p["photos"]) for p in prepared] == [
        (r["caption"], r["motion"], r["photos"]) for r in rows]
    before = (out / "index.jsonl").read_bytes()
    code, stdout, err = run_main(["data", "stills", str(out), "--num", "2"], monkeypatch, capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "already holds a stills dataset: choose another folder, or pass --overwrite" in err
    assert (out / "index.jsonl").read_bytes() == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, _, err = run_main(["data", "stills", str(tmp_path / "mine"), "--num", "1", "--overwrite"], monkeypatch,
                            capsys)
    assert code == 2 and "`t2v data stills` did not write" in err and err.count("\n") == 1
    code, _, err = run_main(["data", "stills", str(tmp_path / "odd"), "--num", "1", "--size", "63"], monkeypatch,
                            capsys)
    assert code == 2 and "must be even" in err and not (tmp_path / "odd").exists()


def test_recipe_configs_resolve(monkeypatch, capsys):
    config = registry.tokenizer_config("stills")
    assert config.data.drawn == DRAW_CLIPS and config.data.size == (128, 128) and config.data.num_frames == 17
    assert (config.model.temporal_stride, config.model.spatial_stride) == (4, 8)
    assert config.data.train_split == "seen" and config.data.eval_split == "heldout"
    assert config.loss.perceptual_weight == 0 and config.loss.adversarial_weight == 0
    quick = registry.tokenizer_config("stills", "quick")
    assert quick.steps < config.steps and quick.model == config.model
    generator = registry.generator_config("stills")
    assert generator.model.codebook_size == int(np.prod(config.model.quantizer.fsq_levels))
    wide = registry.generator_config("stills", "codes64k")
    assert wide.model.codebook_size == 64_000
    small = registry.tokenizer_config("stills", "size64")
    assert small.data.size == (64, 64) and small.model == config.model
    code, stdout, err = run_main(["tokenizer", "train", "stills", "--dry-run"], monkeypatch, capsys)
    assert code == 0, err
    assert "t2v.recipes.stills.dataset:draw_clips" in stdout and "memory per GPU" in stdout


def test_contact_sheet(tmp_path, capsys):
    captions, clips = kind_clips(frames=3, size=(32, 32), seed=1)
    assert clips.shape == (len(KINDS), 3, 32, 32, 3)
    assert [Caption.parse(text).kind for text in captions] == list(KINDS)
    out = tmp_path / "sheet.png"
    assert contact_sheet_main([str(out), "--size", "32", "--frames", "3"]) == 0 and out.is_file()
    assert contact_sheet_main([str(out), "--size", "32", "--frames", "3"]) == 2  # no overwrite unless asked
    assert "Error:" in capsys.readouterr().err
