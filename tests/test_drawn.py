"""Clips drawn by a function (tokenizer/drawn.py): deterministic per (seed, rank, step), and a tokenizer run on them
resumes exactly."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_train import assert_same_losses, assert_same_weights, metrics, train_config

from t2v.tokenizer.config import DataConfig
from t2v.tokenizer.data import Phase, draw_step
from t2v.tokenizer.drawn import DrawnClips, load_draw_function
from t2v.tokenizer.train import train

DRAW = "t2v.recipes.shapes.dataset:draw_clips"


def drawn_config(steps: int):
    config = train_config("unused", steps=steps)
    data = DataConfig(drawn=DRAW, train_split="seen", eval_split="heldout", num_frames=5, size=(16, 16),
                      eval_clips=2, num_workers=0)
    return dataclasses.replace(config, data=data, image_steps=1, image_batch_size=3)


def test_items_are_a_function_of_seed_epoch_and_index():
    clips = DrawnClips(DRAW, num_frames=5, size=(16, 16), split="seen", seed=3)
    first = clips[7]
    assert first["video"].shape == (3, 5, 16, 16) and first["video"].dtype == torch.float32
    assert -1 <= float(first["video"].min()) < float(first["video"].max()) <= 1  # a coloured object on black
    assert torch.equal(DrawnClips(DRAW, num_frames=5, size=(16, 16), split="seen", seed=3)[7]["video"], first["video"])
    assert not torch.equal(clips[8]["video"], first["video"])
    clips.set_epoch(1)
    assert not torch.equal(clips[7]["video"], first["video"])
    assert all(clips[i]["caption"].startswith("a ") for i in range(4))


def test_batches_depend_on_seed_rank_and_step_only():
    phases = [Phase(DrawnClips(DRAW, num_frames=5, size=(16, 16), split="seen", seed=0), batch_size=2)]
    batch = draw_step(phases, seed=0, rank=0, step=5)
    assert batch.shape == (2, 3, 5, 16, 16)
    assert torch.equal(draw_step(phases, seed=0, rank=0, step=5), batch)
    for other in (draw_step(phases, seed=0, rank=1, step=5), draw_step(phases, seed=0, rank=0, step=6),
                  draw_step(phases, seed=1, rank=0, step=5)):
        assert not torch.equal(other, batch)


def test_split_is_respected():
    from t2v.recipes.shapes.dataset import Caption, split_of

    clips = DrawnClips(DRAW, num_frames=1, size=(16, 16), split="heldout", length=20)
    assert {split_of(Caption.parse(clips[i]["caption"])) for i in range(20)} == {"heldout"}


def test_bad_function_names_fail_clearly():
    with pytest.raises(ValueError, match="must be 'module:function'"):
        load_draw_function("draw_clips")
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_draw_function("t2v.recipes.shapes.dataset:no_such_function")
    with pytest.raises(ValueError, match="data.drawn clips come at one size"):
        DataConfig(drawn=DRAW, buckets=[(16, 16), (16, 24)])


def test_training_on_drawn_clips_resumes_exactly(tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    train(drawn_config(steps=4), reference)
    train(drawn_config(steps=2), resumed)
    train(drawn_config(steps=4), resumed, resume=True)
    rows = metrics(resumed)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert_same_losses(metrics(reference), rows, steps=(1, 2, 3, 4))
    assert_same_weights(reference, resumed)
    assert not (reference / "data").exists()  # nothing was written but the run
