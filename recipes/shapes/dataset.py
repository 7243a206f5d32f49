"""The `shapes` synthetic dataset (its specification: recipes/shapes/README.md): captions, the held-out rule, the
motion law, rendering, writing.

Notable choices:
- Lengths scale with s = min(H, W) / 64: the bounding box is round(16·s) px, speeds are 1·s and 2·s px/frame at
  8 fps. At another rate f the motion per second is the same: speeds per frame are multiplied by 8 / f (at 16 fps
  the object moves half the pixels per frame).
- Positions are float top-left corners (y, x); the bounce is the closed-form triangle wave of the unbounded
  motion, so any frame of any length is exact (no accumulated drift). Frames draw the object at the rounded
  position.
- The start coordinate along the motion is an integer drawn so that the box does not touch the wall it moves
  towards during frames 0..16; when the canvas is too small for that, it starts against the opposite wall.
- `render_clip` consumes `rng` only through `trajectory`, so `trajectory(..., rng=same seed)` gives the
  positions of the rendered frames (for the verifier).
- Each clip of `make_dataset` draws from its own generator seeded by (seed, clip index): clip i does not
  depend on how many clips come before it. With several sizes and rates, clip i takes condition i mod (sizes ×
  rates), sizes outermost; each index row records its `fps` and `size` [H, W] (the prepare index format).
- `make_dataset` checks everything first (sizes even, for the mp4 encoder, and at least 16 px, where the shapes
  are 4 px: smaller ones cannot be told apart; the output folder new, empty, or a dataset it wrote, marked by
  `.t2v-dataset`, and that only with `overwrite`), then writes the whole dataset into a temporary sibling and
  renames it into place: a failure or a kill never leaves a partial or mixed dataset (recipes/clip_folder.py, the
  writer the procedural recipes share).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from t2v.recipes import clip_folder
from t2v.tokenizer.video_io import write_video

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
    "cyan": (0, 255, 255), "magenta": (255, 0, 255), "white": (255, 255, 255), "orange": (255, 128, 0),
}
COLORS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "diamond")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (dy, dx)
SPEEDS: dict[str, float] = {"slowly": 1.0, "quickly": 2.0}  # × s px per frame
SPLITS = ("seen", "heldout")
START_FRAMES = 17  # the object must not touch the wall ahead during these frames
FPS = 8.0
MIN_SIZE = 16  # px, the shortest side: its shapes are 4 px, and smaller ones all look alike
_CAPTION = re.compile(r"a (\w+) (\w+) moving (\w+) (\w+)")


@dataclass(frozen=True)
class Caption:
    """One caption of the grammar `a {color} {shape} moving {direction} {speed}`."""

    color: str
    shape: str
    direction: str
    speed: str

    def __post_init__(self) -> None:
        for name, value, allowed in (("color", self.color, COLORS), ("shape", self.shape, SHAPES),
                                     ("direction", self.direction, DIRECTIONS), ("speed", self.speed, SPEEDS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: use one of {', '.join(allowed)}")

    @property
    def text(self) -> str:
        return f"a {self.color} {self.shape} moving {self.direction} {self.speed}"

    @classmethod
    def parse(cls, text: str) -> "Caption":
        """'a red circle moving left slowly' → Caption; ValueError outside the grammar."""
        match = _CAPTION.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError(f"caption {text!r} is not of the form 'a {{color}} {{shape}} moving {{direction}} "
                             f"{{speed}}' (e.g. 'a red circle moving left slowly')")
        return cls(*match.groups())


def all_captions() -> list[Caption]:
    """The 256 captions, in table order (color, shape, direction, speed)."""
    return [Caption(c, s, d, v) for c in COLORS for s in SHAPES for d in DIRECTIONS for v in SPEEDS]


def is_heldout(color: str, shape: str, direction: str) -> bool:
    """True for the (color, shape, direction) triples kept out of training."""
    index = COLORS.index(color) + 2 * SHAPES.index(shape) + 3 * list(DIRECTIONS).index(direction)
    return index % 8 == 0


def split_of(caption: Caption) -> str:
    """'heldout' or 'seen'."""
    return "heldout" if is_heldout(caption.color, caption.shape, caption.direction) else "seen"


def captions_of_split(split: str) -> list[Caption]:
    """The captions of 'seen', 'heldout' or 'all'."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r}: use seen, heldout or all")
    return [c for c in all_captions() if split == "all" or split_of(c) == split]


# --------------------------------------------------------------------------------------------- geometry
def scale(size: tuple[int, int]) -> float:
    """s = min(H, W) / 64."""
    return min(size) / 64


def frame_speed(caption: Caption, size: tuple[int, int], fps: float = FPS) -> float:
    """px per frame: the caption's speed × s at 8 fps, scaled so the motion per second is the same at `fps`."""
    return SPEEDS[caption.speed] * scale(size) * FPS / fps


def box_size(size: tuple[int, int]) -> int:
    """The object's bounding box side, 16·s px (at least 1)."""
    return max(1, round(16 * scale(size)))


def shape_mask(shape: str, box: int) -> np.ndarray:
    """bool (box, box) mask of a shape filling its bounding box (also the verifier's template)."""
    centre = np.arange(box) + 0.5 - box / 2  # pixel centres relative to the box centre
    y, x = centre[:, None], centre[None, :]
    if shape == "circle":
        return y**2 + x**2 <= (box / 2) ** 2
    if shape == "square":
        return np.ones((box, box), bool)
    if shape == "triangle":  # apex at the top centre, base along the bottom edge (width at each row's bottom)
        return np.abs(x) <= (y + 0.5 + box / 2) / 2
    if shape == "diamond":
        return np.abs(x) + np.abs(y) <= box / 2
    raise ValueError(f"unknown shape {shape!r}: use one of {', '.join(SHAPES)}")


def _bounce(position: np.ndarray, limit: float) -> np.ndarray:
    """Fold an unbounded coordinate into [0, limit] (elastic bounces at both ends)."""
    if limit <= 0:
        return np.zeros_like(position)
    folded = np.mod(position, 2 * limit)
    return np.where(folded <= limit, folded, 2 * limit - folded)


def start_position(caption: Caption, size: tuple[int, int], rng: np.random.Generator,
                   fps: float = FPS) -> tuple[int, int]:
    """Top-left (y, x) at frame 0 per the README's start rule (at `fps`: frames 0..16 cover less ground when faster)."""
    box = box_size(size)
    limits = (size[0] - box, size[1] - box)
    speed = frame_speed(caption, size, fps)
    start = []
    for axis, step in enumerate(DIRECTIONS[caption.direction]):
        if step == 0:
            start.append(int(rng.integers(0, limits[axis] + 1)))
            continue
        # positions p with p + (START_FRAMES-1)·speed < limit (moving towards the far wall)
        room = int(np.ceil(limits[axis] - (START_FRAMES - 1) * speed))  # p in [0, room) avoids the wall
        distance = int(rng.integers(0, room)) if room > 0 else 0
        start.append(distance if step > 0 else limits[axis] - distance)
    return start[0], start[1]


def trajectory(caption: Caption, num_frames: int, size: tuple[int, int] = (64, 64),
               rng: np.random.Generator | None = None, start: tuple[int, int] | None = None,
               fps: float = FPS) -> np.ndarray:
    """float (T, 2) top-left (y, x) per frame at `fps`; the start from `start`, else drawn from `rng`."""
    if start is None:
        start = start_position(caption, size, rng if rng is not None else np.random.default_rng(), fps)
    box = box_size(size)
    speed = frame_speed(caption, size, fps)
    steps = np.arange(num_frames, dtype=np.float64)[:, None]  # (T, 1)
    velocity = np.array(DIRECTIONS[caption.direction], np.float64) * speed  # (2,)
    free = np.asarray(start, np.float64) + steps * velocity  # (T, 2) unbounded motion
    return np.stack([_bounce(free[:, 0], size[0] - box), _bounce(free[:, 1], size[1] - box)], axis=1)


def draw_frames(caption: Caption, positions: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T,H,W,3): the object at each (rounded) top-left position on black."""
    box = box_size(size)
    mask = shape_mask(caption.shape, box)
    frames = np.zeros((len(positions), *size, 3), np.uint8)
    colour = np.array(PALETTE[caption.color], np.uint8)
    for frame, (y, x) in zip(frames, np.rint(positions).astype(int)):
        frame[y:y + box, x:x + box][mask] = colour
    return frames


def render_clip(caption: Caption | str, num_frames: int = START_FRAMES, size: tuple[int, int] = (64, 64),
                rng: np.random.Generator | None = None, fps: float = FPS) -> np.ndarray:
    """uint8 (T,H,W,3) clip of a caption at `fps`; the start is drawn from `rng`."""
    caption = Caption.parse(caption) if isinstance(caption, str) else caption
    if num_frames < 1 or min(size) < 1 or fps <= 0:
        raise ValueError(f"need num_frames >= 1, a positive size and fps, got {num_frames} frames of {size} at {fps}")
    return draw_frames(caption, trajectory(caption, num_frames, size, rng, fps=fps), size)


# --------------------------------------------------------------------------------------------- writing
def check_size(size: tuple[int, int]) -> None:
    """Raise unless clips of `size` (H, W) can be drawn (shortest side >= MIN_SIZE) and written as mp4 (even)."""
    height, width = size
    if height % 2 or width % 2 or min(height, width) < MIN_SIZE:
        raise ValueError(f"size {width}x{height} (WxH) cannot be used: width and height must be even (H.264 mp4 "
                         f"needs it) and at least {MIN_SIZE} (smaller shapes all look alike); e.g. 64 or 96x64")


def check_dataset_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise unless `out_dir` is new, empty, or (with `overwrite`) a dataset folder make_dataset wrote."""
    clip_folder.check_dataset_dir(out_dir, "shapes", overwrite)


def draw_clips(*, num: int, frames: int = START_FRAMES, size: tuple[int, int] = (64, 64), seed: int = 0,
               split: str = "all", fps: float = FPS, sizes: Sequence[tuple[int, int]] = (),
               rates: Sequence[float] = ()) -> Iterator[tuple[dict, np.ndarray]]:
    """`num` clips as (index fields {caption, split, fps, size}, uint8 frames (T, H, W, 3)), drawn as
    `make_dataset` draws them (clip i from a generator seeded by (seed, i); condition i mod the (size, rate)
    conditions). The arguments are checked at the call, before the first clip is drawn."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    conditions = [(tuple(s), float(r)) for s in (sizes or [size]) for r in (rates or [fps])]
    if any(r <= 0 for _, r in conditions):
        raise ValueError(f"rates must be positive, got {[r for _, r in conditions]}")
    for clip_size, _ in conditions:
        check_size(clip_size)
    captions = captions_of_split(split)

    def draw() -> Iterator[tuple[dict, np.ndarray]]:
        for i in range(num):
            rng = np.random.default_rng([seed, i])
            caption = captions[int(rng.integers(len(captions)))]
            clip_size, clip_fps = conditions[i % len(conditions)]
            clip = render_clip(caption, frames, clip_size, rng, clip_fps)
            yield {"caption": caption.text, "split": split_of(caption), "fps": clip_fps, "size": list(clip_size)}, clip

    return draw()


def make_dataset(out_dir: str | os.PathLike, *, num: int, frames: int = START_FRAMES,
                 size: tuple[int, int] = (64, 64), seed: int = 0, split: str = "all", fps: float = FPS,
                 sizes: Sequence[tuple[int, int]] = (), rates: Sequence[float] = (), overwrite: bool = False) -> Path:
    """Write `num` clips to out_dir/videos/*.mp4 and out_dir/index.jsonl; returns the index path.

    Captions are drawn uniformly from the split's captions ('all' = both, each row tagged with its split). Clips
    are `size` (H, W) at `fps`, or, given `sizes` and/or `rates`, each (size, rate) condition in turn (clip i:
    condition i mod their count); the motion per second is the same at every rate. `out_dir` must be new or empty,
    or, with `overwrite`, a dataset this function wrote (replaced whole); everything is checked before anything is
    written.
    """
    clips = draw_clips(num=num, frames=frames, size=size, seed=seed, split=split, fps=fps, sizes=sizes,
                       rates=rates)  # checks the arguments before anything is drawn
    return clip_folder.write_clips(out_dir, clips, name="shapes", num=num, overwrite=overwrite, write=write_video)
