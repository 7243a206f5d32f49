"""Camera motion over a photograph, per frame, in closed form: the laws of the stills recipe (its README, "Motions").

A camera path is the view's motion relative to frame 0, in output pixels: the offset of the view's centre (x right,
y down), its size (`zoom`, 1 at frame 0; below 1 the view is smaller: zoomed in) and its roll (`angle`, radians,
clockwise on screen). Speeds are per second, as fractions of the frame's side, so a clip shows the same motion per
second at any size and frame rate (frame k is at time k / fps). `view_matrices` places the path on a photo: the
largest view scale whose every frame stays inside the photo, times a drawn factor, and a drawn start.

The camera's motion is the opposite of the picture's: a camera panning left slides the picture right in the frame,
a camera tilting up slides it down, zooming in enlarges it, rolling clockwise turns it counter-clockwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Ranges a clip's speed is drawn from, uniformly (per second).
PAN_SPEED = (0.15, 0.30)  # frame widths (pan) or heights (tilt) per second
ZOOM_RATE = (0.2, 0.4)  # natural log of the view's size per second: ×1.22 to ×1.49 a second
ROLL_RATE = (10.0, 20.0)  # degrees per second
SHAKE_AMPLITUDE = 0.03  # of the frame side, each of 2 sinusoids per axis (times a factor in [0.5, 1])
SHAKE_FREQUENCY = (1.0, 2.5)  # Hz
SHAKE_ROLL = 0.5  # degrees, the roll's amplitude
# Long clips: the travel and the zoom are capped, so the view never shrinks to a few photo pixels.
MAX_TRAVEL = 3.0  # frame sides in all
MAX_ZOOM = 4.0  # ×, in all
VIEW_FACTOR = (0.55, 1.0)  # the view's scale, relative to the largest that fits the photo

# Direction → the camera's unit motion: (x, y) for pans and tilts, the sign of log-zoom or roll for the others.
MOVES: dict[str, tuple[float, float]] = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                                         "down": (0.0, 1.0)}
ZOOMS = {"in": -1.0, "out": 1.0}
ROLLS = {"clockwise": 1.0, "counterclockwise": -1.0}


@dataclass(frozen=True)
class Camera:
    """A camera path of T frames relative to frame 0: offset (T, 2) px (x, y), zoom (T,), angle (T,) radians."""

    offset: np.ndarray
    zoom: np.ndarray
    angle: np.ndarray

    @classmethod
    def still(cls, frames: int) -> "Camera":
        return cls(np.zeros((frames, 2)), np.ones(frames), np.zeros(frames))


def times(frames: int, fps: float) -> np.ndarray:
    """(T,) seconds of each frame."""
    return np.arange(frames, dtype=np.float64) / fps


def capped(rate: float, cap: float, frames: int, fps: float) -> float:
    """`rate` per second, lowered so that the whole clip covers at most `cap`."""
    duration = (frames - 1) / fps
    return min(rate, cap / duration) if duration > 0 else rate


def pan(direction: str, speed: float, frames: int, fps: float, size: tuple[int, int]) -> Camera:
    """The view moves in `direction` (left, right, up, down) at `speed` frame sides per second (width for left
    and right, height for up and down)."""
    height, width = size
    dx, dy = MOVES[direction]
    side = width if dx else height
    speed = capped(speed, MAX_TRAVEL, frames, fps)
    offset = np.outer(times(frames, fps), [dx, dy]) * speed * side
    return Camera(offset, np.ones(frames), np.zeros(frames))


def zoom(direction: str, rate: float, frames: int, fps: float) -> Camera:
    """The view shrinks ("in") or grows ("out") by exp(rate) a second."""
    rate = capped(rate, math.log(MAX_ZOOM), frames, fps)
    return Camera(np.zeros((frames, 2)), np.exp(ZOOMS[direction] * rate * times(frames, fps)), np.zeros(frames))


def roll(direction: str, degrees_per_second: float, frames: int, fps: float) -> Camera:
    """The view turns about its centre, clockwise or counterclockwise on screen."""
    angle = ROLLS[direction] * math.radians(degrees_per_second) * times(frames, fps)
    return Camera(np.zeros((frames, 2)), np.ones(frames), angle)


def shake(rng: np.random.Generator, frames: int, fps: float, size: tuple[int, int]) -> Camera:
    """Hand-held shake: per axis two sinusoids (frequencies in SHAKE_FREQUENCY, random phases, amplitudes
    SHAKE_AMPLITUDE × [0.5, 1] of the frame side), and a roll of SHAKE_ROLL degrees; it starts at rest at 0."""
    t = times(frames, fps)

    def wobble(amplitude: float) -> np.ndarray:
        frequency = rng.uniform(*SHAKE_FREQUENCY, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        scale = amplitude * rng.uniform(0.5, 1.0, size=2)
        wave = (scale[:, None] * np.sin(2 * np.pi * frequency[:, None] * t + phase[:, None])).sum(axis=0)
        return wave - wave[0]

    offset = np.stack([wobble(SHAKE_AMPLITUDE * size[1]), wobble(SHAKE_AMPLITUDE * size[0])], axis=1)
    return Camera(offset, np.ones(frames), wobble(math.radians(SHAKE_ROLL)))


def corners(camera: Camera, size: tuple[int, int]) -> np.ndarray:
    """(T, 4, 2) the view's corners (x, y) per frame, in output pixels relative to frame 0's centre."""
    height, width = size
    box = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * [width / 2, height / 2]
    cos, sin = np.cos(camera.angle), np.sin(camera.angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (T, 2, 2), y down: clockwise
    return camera.offset[:, None] + camera.zoom[:, None, None] * np.einsum("tij,cj->tci", rotation, box)


def view_matrices(camera: Camera, photo_shape: tuple[int, int], size: tuple[int, int],
                  rng: np.random.Generator) -> np.ndarray:
    """(T, 2, 3) affine maps from output pixel coordinates (x, y, 1) to the photo's, pixel centres at +0.5.

    The view's scale (photo px per output px) is the largest at which every frame stays inside the photo, times a
    factor drawn from VIEW_FACTOR (never below 1 px when the largest allows it); the start is drawn uniformly
    among those that keep the path inside."""
    height, width = size
    points = corners(camera, size).reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)  # (x, y) extent over the clip, in output px
    extent = high - low
    largest = min(photo_shape[1] / extent[0], photo_shape[0] / extent[1])
    scale = largest * rng.uniform(*VIEW_FACTOR)
    scale = max(scale, min(1.0, largest))
    room = np.array([photo_shape[1], photo_shape[0]]) - scale * extent  # (x, y) free photo px
    centre = rng.uniform(0, 1, size=2) * np.maximum(room, 0) - scale * low  # frame 0's centre in the photo
    cos, sin = np.cos(camera.angle), np.sin(camera.angle)
    linear = scale * camera.zoom[:, None, None] * np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shift = centre + scale * camera.offset - np.einsum("tij,j->ti", linear, [width / 2, height / 2])
    return np.concatenate([linear, shift[:, :, None]], axis=2)


def translation_matrices(positions: np.ndarray) -> np.ndarray:
    """(T, 2, 3) maps of a picture whose top-left corner is at `positions` (T, 2) (x, y) in output pixels."""
    matrices = np.zeros((len(positions), 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, :, 2] = -positions
    return matrices


def crossing(direction: str, speed: float, frames: int, fps: float, size: tuple[int, int],
             picture: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(T, 2) top-left (x, y) of a `picture` (h, w) moving in `direction` at `speed` frame sides per second, its
    centre crossing the frame's centre line at mid-clip, off-centre across the motion by up to a quarter side."""
    height, width = size
    dx, dy = MOVES[direction]
    side = width if dx else height
    t = times(frames, fps)
    centre = np.array([width / 2, height / 2]) + (1 - np.abs([dx, dy])) * rng.uniform(-0.25, 0.25) * [width, height]
    path = centre + np.outer(t - t[-1] / 2, [dx, dy]) * speed * side
    return path - np.array([picture[1] / 2, picture[0] / 2])
