"""The stills dataset (its specification: recipes/stills/README.md): captions, scenes of camera motion over the
packages' photographs, drawing clips, writing them.

Notable choices:
- Clip i of `draw_clips` draws everything from its own generator seeded by (seed, i), in a fixed order (motion,
  direction, photos, then the motion's numbers): clip i does not depend on the clips before it, and the
  tokenizer's `data.drawn` clips are a pure function of (seed, step, item) (tokenizer/drawn.py).
- A clip of split s uses only photographs of split s (its first and its second picture); 'all' draws the first
  from every photo and the second from the first's split, and the row's split is the first's.
- Parallax, occlusion and a cut need a second photograph: another of the split, never the first.
- The picture of a parallax or occlusion layer is rendered once (a still view of the second photo), then moved
  with sub-pixel bilinear shifts.
"""
from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from t2v.recipes import clip_folder
from t2v.recipes.stills import motion, photos
from t2v.recipes.stills.render import Layer, render
from t2v.tokenizer.video_io import write_video

FPS = 8.0
FRAMES = 17
SIZE = (128, 128)  # (H, W)
MIN_SIZE = 16  # px, the shortest side
KINDS = ("still", "pan", "tilt", "zoom", "rotate", "shake", "parallax", "occlusion", "cut")
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "pan": ("left", "right"), "tilt": ("up", "down"), "zoom": ("in", "out"),
    "rotate": ("clockwise", "counterclockwise"), "parallax": ("left", "right", "up", "down"),
    "occlusion": ("left", "right", "up", "down"),
}
SECOND_PHOTO = ("parallax", "occlusion", "cut")  # the kinds with a second picture
PARALLAX_SPEED = (0.10, 0.20)  # the background's, frame sides per second
PARALLAX_RATIO = (2.0, 3.0)  # the foreground picture moves this many times faster
PICTURE_SIZE = (0.35, 0.5)  # a foreground or occluding picture's sides, of the frame's
OCCLUDER_SPEED = (0.30, 0.50)  # frame sides per second
_VERB = {"left": "pans left", "right": "pans right", "up": "tilts up", "down": "tilts down"}
_TEMPLATES = {  # kind → caption; {a}: the photo, {b}: the second, {d}: the direction
    "still": "a still shot of {a}",
    "pan": "the camera pans {d} over {a}",
    "tilt": "the camera tilts {d} over {a}",
    "zoom": "the camera zooms {d} {a}",  # {d}: "in on" or "out from"
    "rotate": "the camera rotates {d} over {a}",
    "shake": "a hand-held camera shakes over {a}",
    "parallax": "the camera {d} past {b} in front of {a}",  # {d}: "pans left", …, "tilts down"
    "occlusion": "a picture of {b} slides {d} across {a}",
    "cut": "a cut from {a} to {b}",
}
_ZOOM_WORDS = {"in": "in on", "out": "out from"}
_WORDS = {"zoom": _ZOOM_WORDS, "parallax": _VERB}  # kind → direction → its words in a caption


@dataclass(frozen=True)
class Caption:
    """What a clip shows: a motion `kind`, its `direction` (None for still, shake and cut), the photo `photo` and,
    for parallax, occlusion and a cut, the `second` photo (by their names)."""

    kind: str
    direction: str | None
    photo: str
    second: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown motion {self.kind!r}: use one of {', '.join(KINDS)}")
        allowed = DIRECTIONS.get(self.kind, (None,))
        if self.direction not in allowed:
            raise ValueError(f"motion {self.kind} takes direction {' or '.join(map(str, allowed))}, got "
                             f"{self.direction!r}")
        photos.photo(self.photo)
        if (self.second is None) == (self.kind in SECOND_PHOTO) or self.second == self.photo:
            needs = "a second photo other than the first" if self.kind in SECOND_PHOTO else "no second photo"
            raise ValueError(f"motion {self.kind} needs {needs}, got {self.second!r}")
        if self.second is not None:
            photos.photo(self.second)

    @property
    def text(self) -> str:
        direction = _WORDS.get(self.kind, {}).get(self.direction, self.direction)
        second = photos.photo(self.second).phrase if self.second else None
        return _TEMPLATES[self.kind].format(a=photos.photo(self.photo).phrase, b=second, d=direction)

    @property
    def photo_names(self) -> list[str]:
        return [self.photo] + ([self.second] if self.second else [])

    @classmethod
    def parse(cls, text: str) -> "Caption":
        """'the camera pans left over a cat' → Caption; ValueError outside the grammar."""
        text = " ".join(text.strip().lower().split())
        for kind, pattern in _patterns():
            match = pattern.fullmatch(text)
            if match is not None:
                words = match.groupdict()
                direction = _direction_of(kind, words.get("d"))
                return cls(kind, direction, _PHRASES[words["a"]], _PHRASES[words["b"]] if words.get("b") else None)
        raise ValueError(f"caption {text!r} is outside the stills grammar (e.g. 'the camera pans left over a cat'; "
                         "recipes/stills/README.md lists its forms and photos)")


_PHRASES = {p.phrase: p.name for p in photos.PHOTOS}


def _direction_of(kind: str, words: str | None) -> str | None:
    """The direction a caption's words name ("in on" → "in", "pans left" → "left")."""
    table = _WORDS.get(kind)
    return {phrase: name for name, phrase in table.items()}[words] if table else words


@functools.lru_cache(maxsize=None)
def _patterns() -> list[tuple[str, re.Pattern]]:
    """(kind, the regular expression of its captions), the photo phrases longest first."""
    phrase = "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True))
    out = []
    for kind, template in _TEMPLATES.items():
        words = _WORDS.get(kind)
        choices = list(words.values()) if words else list(DIRECTIONS.get(kind, ()))
        pattern = re.escape(template).replace(r"\{a\}", f"(?P<a>{phrase})").replace(r"\{b\}", f"(?P<b>{phrase})")
        pattern = pattern.replace(r"\{d\}", "(?P<d>" + "|".join(re.escape(c) for c in choices) + ")")
        out.append((kind, re.compile(pattern)))
    return out


def draw_caption(rng: np.random.Generator, split: str, kind: str | None = None) -> Caption:
    """A caption of `split`: the motion uniform over KINDS (or `kind`), then its direction, then the photos."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown motion {kind!r}: use one of {', '.join(KINDS)}")
    kind = KINDS[int(rng.integers(len(KINDS)))] if kind is None else kind
    choices = DIRECTIONS.get(kind, (None,))
    direction = choices[int(rng.integers(len(choices)))]
    names = photos.names_of_split(split)
    first = names[int(rng.integers(len(names)))]
    second = None
    if kind in SECOND_PHOTO:
        others = [name for name in photos.names_of_split(photos.split_of(first)) if name != first]
        second = others[int(rng.integers(len(others)))]
    return Caption(kind, direction, first, second)


# --------------------------------------------------------------------------------------------- scenes
def background(name: str, camera: motion.Camera, size: tuple[int, int], rng: np.random.Generator) -> Layer:
    """Photo `name` seen through `camera`."""
    picture = photos.load(name)
    return Layer(picture, motion.view_matrices(camera, picture.shape[:2], size, rng))


def picture(name: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """A still view of photo `name` as a picture of a drawn PICTURE_SIZE fraction of `size`, and its (h, w)."""
    fraction = rng.uniform(*PICTURE_SIZE)
    shape = (max(2, round(size[0] * fraction)), max(2, round(size[1] * fraction)))
    return render([background(name, motion.Camera.still(1), shape, rng)], shape)[0], shape


def camera_of(caption: Caption, frames: int, fps: float, size: tuple[int, int],
              rng: np.random.Generator) -> motion.Camera:
    """The camera path over the first photo."""
    kind, direction = caption.kind, caption.direction
    if kind in ("pan", "tilt"):
        return motion.pan(direction, rng.uniform(*motion.PAN_SPEED), frames, fps, size)
    if kind == "zoom":
        return motion.zoom(direction, rng.uniform(*motion.ZOOM_RATE), frames, fps)
    if kind == "rotate":
        return motion.roll(direction, rng.uniform(*motion.ROLL_RATE), frames, fps)
    if kind == "shake":
        return motion.shake(rng, frames, fps, size)
    return motion.Camera.still(frames)


def render_clip(caption: Caption | str, frames: int = FRAMES, size: tuple[int, int] = SIZE,
                rng: np.random.Generator | None = None, fps: float = FPS) -> np.ndarray:
    """uint8 (T, H, W, 3): the caption's scene at `fps`, its numbers (speeds, view, start) drawn from `rng`."""
    caption = Caption.parse(caption) if isinstance(caption, str) else caption
    if frames < 1 or min(size) < 1 or fps <= 0:
        raise ValueError(f"need frames >= 1, a positive size and fps, got {frames} frames of {size} at {fps}")
    rng = rng if rng is not None else np.random.default_rng()
    if caption.kind == "cut":
        at = min(frames - 1, max(1, int(rng.integers(math.ceil(frames / 3), 2 * frames // 3 + 1)))) if frames > 1 \
            else 1
        first = render([background(caption.photo, motion.Camera.still(at), size, rng)], size)
        if at >= frames:
            return first
        second = render([background(caption.second, motion.Camera.still(frames - at), size, rng)], size)
        return np.concatenate([first, second])
    if caption.kind == "parallax":
        speed = rng.uniform(*PARALLAX_SPEED)
        layers = [background(caption.photo, motion.pan(caption.direction, speed, frames, fps, size), size, rng)]
        image, shape = picture(caption.second, size, rng)
        opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}[caption.direction]
        speed = motion.capped(speed, motion.MAX_TRAVEL, frames, fps) * rng.uniform(*PARALLAX_RATIO)
        positions = motion.crossing(opposite, speed, frames, fps, size, shape, rng)
        return render([*layers, Layer(image, motion.translation_matrices(positions))], size)
    layers = [background(caption.photo, camera_of(caption, frames, fps, size, rng), size, rng)]
    if caption.kind == "occlusion":
        image, shape = picture(caption.second, size, rng)
        positions = motion.crossing(caption.direction, rng.uniform(*OCCLUDER_SPEED), frames, fps, size, shape, rng)
        layers.append(Layer(image, motion.translation_matrices(positions)))
    return render(layers, size)


# --------------------------------------------------------------------------------------------- drawing, writing
def check_size(size: tuple[int, int]) -> None:
    """Raise unless clips of `size` (H, W) can be drawn and written as mp4 (even sides, at least MIN_SIZE)."""
    height, width = size
    if height % 2 or width % 2 or min(height, width) < MIN_SIZE:
        raise ValueError(f"size {width}x{height} (WxH) cannot be used: width and height must be even (H.264 mp4 "
                         f"needs it) and at least {MIN_SIZE}; e.g. 128 or 192x128")


def check_dataset_dir(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise unless `out_dir` is new, empty, or (with `overwrite`) a folder `t2v data stills` wrote."""
    clip_folder.check_dataset_dir(out_dir, "stills", overwrite)


def draw_clips(*, num: int, frames: int = FRAMES, size: tuple[int, int] = SIZE, seed: int = 0, split: str = "all",
               fps: float = FPS, sizes: Sequence[tuple[int, int]] = (),
               rates: Sequence[float] = ()) -> Iterator[tuple[dict, np.ndarray]]:
    """`num` clips as (index fields {caption, split, fps, size, motion, direction, photos}, uint8 (T, H, W, 3)).

    Clip i draws from a generator seeded by (seed, i) and takes condition i mod the (size, rate) conditions
    (`sizes` × `rates`, sizes outermost; default the one `size` and `fps`). The arguments are checked at the call,
    before the first clip is drawn."""
    if num < 1 or frames < 1:
        raise ValueError(f"num and frames must be >= 1, got {num} and {frames}")
    conditions = [(tuple(s), float(r)) for s in (sizes or [size]) for r in (rates or [fps])]
    if any(r <= 0 for _, r in conditions):
        raise ValueError(f"rates must be positive, got {[r for _, r in conditions]}")
    for clip_size, _ in conditions:
        check_size(clip_size)
    photos.names_of_split(split)  # checks the split

    def draw() -> Iterator[tuple[dict, np.ndarray]]:
        for i in range(num):
            rng = np.random.default_rng([seed, i])
            caption = draw_caption(rng, split)
            clip_size, clip_fps = conditions[i % len(conditions)]
            clip = render_clip(caption, frames, clip_size, rng, clip_fps)
            yield {"caption": caption.text, "split": photos.split_of(caption.photo), "fps": clip_fps,
                   "size": list(clip_size), "motion": caption.kind, "direction": caption.direction or "",
                   "photos": caption.photo_names}, clip

    return draw()


def make_dataset(out_dir: str | os.PathLike, *, num: int, frames: int = FRAMES, size: tuple[int, int] = SIZE,
                 seed: int = 0, split: str = "all", fps: float = FPS, sizes: Sequence[tuple[int, int]] = (),
                 rates: Sequence[float] = (), overwrite: bool = False) -> Path:
    """Write `num` clips (as `draw_clips` draws them) to out_dir/videos/*.mp4 and out_dir/index.jsonl; returns the
    index path. `out_dir` must be new or empty, or, with `overwrite`, a folder this function wrote (replaced
    whole); everything is checked before anything is written, and nothing partial is ever left
    (recipes/clip_folder.py)."""
    clips = draw_clips(num=num, frames=frames, size=size, seed=seed, split=split, fps=fps, sizes=sizes, rates=rates)
    return clip_folder.write_clips(out_dir, clips, name="stills", num=num, overwrite=overwrite, write=write_video)
