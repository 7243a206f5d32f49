"""Clips drawn by a function instead of read from files: training data made fresh at every step.

A procedural dataset (the shapes recipe's, `t2v.recipes.shapes.dataset:draw_clips`) can give the tokenizer a new
clip for every item it trains on: no files to write or decode, and nothing to memorise. `DataConfig.drawn` names
the function as "module:function"; it is called as `function(num=1, frames=T, size=(H, W), seed=s, split=split)`
and yields (row fields, uint8 frames (T, H, W, 3)) pairs (the `draw_clips` signature).

`DrawnClips` has the interface the trainer's batches and evaluation use (`ClipDataset`'s): item i of epoch e is
drawn from seed (seed, e, i), so a batch is a pure function of (seed, rank, step) and a resumed run sees the very
clips the uninterrupted one would. Its length only bounds the item indices a batch draws from (`SPAN`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import numpy as np

from t2v.tokenizer.frames import to_pixels

SPAN = 2**31  # item indices of the training sets: a batch's random indices almost never repeat
DrawFunction = Callable[..., Iterator[tuple[dict, np.ndarray]]]


def load_draw_function(name: str) -> DrawFunction:
    """The function "module:function" names; a one-line error says what is wrong with the name."""
    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"data.drawn must be 'module:function', e.g. t2v.recipes.shapes.dataset:draw_clips; got "
                         f"{name!r}")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"data.drawn {name!r} cannot be loaded ({error}): name an importable function") from None
    if not callable(function):
        raise ValueError(f"data.drawn {name!r} is not a function")
    return function


class DrawnClips:
    """Clips of `num_frames` frames at size (H, W) of `split`, each drawn by `draw` from its own seed.

    Items are {"video": float32 (3, T, H, W) in [-1, 1], "caption": str, "path": str} like `ClipDataset`'s (the
    path names the draw: "drawn:<seed>,<epoch>,<i>"). `length` items: `SPAN` for training, the number of held-out
    clips for evaluation (always the same clips there: evaluation uses epoch 0).
    """

    def __init__(self, draw: str | DrawFunction, *, num_frames: int, size: tuple[int, int], split: str | None,
                 seed: int = 0, length: int = SPAN) -> None:
        if num_frames < 1 or length < 1:
            raise ValueError(f"need num_frames >= 1 and length >= 1, got {num_frames}, {length}")
        self.draw = load_draw_function(draw) if isinstance(draw, str) else draw
        self.num_frames, self.size, self.split, self.seed, self.length = num_frames, tuple(size), split, seed, length
        self.epoch = 0
        self.skipped: dict[str, str] = {}  # nothing is ever skipped: the batches' interface
        self.buckets = [range(length)]
        self[0]  # a function that cannot draw these clips fails here, before any step

    def size_of(self, i: int) -> tuple[int, int]:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Draw new clips: item i of epoch e comes from seed (seed, e, i)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(f"item {i} out of range [0, {self.length})")
        seed = int(np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1, np.uint64)[0] >> 1)
        row, clip = next(iter(self.draw(num=1, frames=self.num_frames, size=self.size, seed=seed,
                                        split=self.split or "all")))
        return {"video": to_pixels(clip)[0], "caption": row["caption"], "path": f"drawn:{self.seed},{self.epoch},{i}"}
