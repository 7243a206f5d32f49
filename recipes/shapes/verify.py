"""The `shapes` verifier (recipes/shapes/README.md, "The verifier"): does a video show what its caption says?

Lengths scale with s = min(H, W) / 64; b = box_size((H, W)) is the object's box side. Per video:
1. Object: a pixel is foreground when its brightest channel exceeds 96 (far from black, well above noise and
   compression ringing). Per frame, scipy.ndimage.label (8-connected) finds the blobs; the frame shows the
   object when the largest blob covers 0.25·b² to 2·b² px and every other blob is under a quarter of it (specks
   are ignored). The object passes when ≥ 90% of the frames show it; a missing object fails every attribute.
2. Color: per frame the median RGB of the blob's interior (eroded by max(1, round(s)) px, as mp4's yuv420p
   blurs colour at the rim), then the median over frames, scaled so its brightest channel is 255 (as in every
   palette colour: a dim decoder output keeps its hue); passes when its nearest palette colour is the caption's.
3. Shape: each template (`shape_mask` at side b) is placed with its centroid on the blob's (best of the ±1 px
   shifts, for rounding); the best mean IoU over frames names the shape. It passes when that is the caption's
   shape and its IoU is ≥ 0.5 (a blob like no template fails).
4. Motion: along the axis where the centroid moves most (peak to peak), the run before the first bounce starts
   at the first object frame; its sign is that of the first departure by more than max(1, 0.75·s) px, and it
   ends at the farthest position reached before the object comes back by more than that, or at the first frame
   whose blob touches the wall ahead. A bounce right after frame 0 thus measures the motion after it (the only
   motion the video shows). The least-squares centroid velocity over the run gives the direction (dominant axis
   and sign, at least 0.5·s px/frame) and the speed (nearer to the caption's 1·s or 2·s px/frame than the other).
   `either_sign=True` accepts both signs on the caption's axis: for later segments of a long video, where
   bounces may have reversed the motion. At a frame rate `fps` other than 8 the motion per second is the same, so
   the speeds per frame (1·s, 2·s and the 0.5·s floor) are scaled by 8 / fps: at 16 fps half the pixels a frame.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from t2v.recipes import evaluation
from t2v.recipes.shapes.dataset import (
    DIRECTIONS, FPS, PALETTE, SHAPES, SPEEDS, Caption, box_size, scale, shape_mask,
)

ATTRIBUTES = ("object", "color", "shape", "direction", "speed")
FOREGROUND = 96  # brightest channel above this is "far from black"
AREA_RANGE = (0.25, 2.0)  # blob area in units of b²
SPECK = 0.25  # other blobs must be smaller than this fraction of the largest
OBJECT_FRAMES = 0.9  # fraction of frames that must show the object
MIN_IOU = 0.5
MIN_SPEED = 0.5  # × s px/frame: slower counts as not moving
_EIGHT = np.ones((3, 3), bool)  # 8-connectivity


@dataclass
class VideoCheck:
    """Per-attribute verdicts on one video, plus what was measured (for debugging)."""

    object: bool
    color: bool
    shape: bool
    direction: bool
    speed: bool
    object_fraction: float = 0.0  # frames showing one dominant blob
    measured_color: str | None = None
    rgb: tuple[int, int, int] | None = None  # robust blob colour
    measured_shape: str | None = None
    iou: float = 0.0  # mean IoU of the measured shape's template
    velocity: tuple[float, float] = (0.0, 0.0)  # (dy, dx) px/frame before the first bounce
    run_frames: int = 0  # frames in that run

    @property
    def passed(self) -> bool:
        return all(getattr(self, name) for name in ATTRIBUTES)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


# --------------------------------------------------------------------------------------------- per frame
def find_blob(frame: np.ndarray, box: int) -> np.ndarray | None:
    """bool (H, W) mask of the frame's one dominant blob, or None when there is none."""
    labels, count = ndimage.label(frame.max(axis=-1) > FOREGROUND, structure=_EIGHT)
    if count == 0:
        return None
    areas = np.bincount(labels.ravel())[1:]  # (count,)
    order = np.argsort(areas)[::-1]
    largest = areas[order[0]]
    if not AREA_RANGE[0] * box**2 <= largest <= AREA_RANGE[1] * box**2:
        return None
    if count > 1 and areas[order[1]] >= SPECK * largest:
        return None
    return labels == order[0] + 1


def _interior_rgb(frame: np.ndarray, blob: np.ndarray, s: float) -> np.ndarray:
    """float (3,) median colour of the blob's eroded interior (the whole blob if erosion empties it)."""
    interior = ndimage.binary_erosion(blob, _EIGHT, iterations=max(1, round(s)))
    return np.median(frame[interior if interior.any() else blob], axis=0)


def _template_iou(blob: np.ndarray, centroid: np.ndarray, template: np.ndarray) -> float:
    """IoU of the blob with the template centred on the blob's centroid, best of ±1 px shifts."""
    box = len(template)
    pad = box + 2
    padded = np.pad(blob, pad)
    top_left = np.rint(centroid - np.argwhere(template).mean(axis=0)).astype(int) + pad
    area = blob.sum() + template.sum()
    best = 0.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y, x = top_left[0] + dy, top_left[1] + dx
            inter = np.count_nonzero(padded[y:y + box, x:x + box] & template)
            best = max(best, inter / (area - inter))
    return best


# --------------------------------------------------------------------------------------------- per video
def _measure_shape(blobs: list[np.ndarray], centroids: np.ndarray, box: int) -> tuple[str, float]:
    """(shape, mean IoU) of the template that best matches the blobs over frames."""
    templates = [shape_mask(shape, box) for shape in SHAPES]
    ious = np.array([[_template_iou(blob, c, t) for t in templates] for blob, c in zip(blobs, centroids)])
    means = ious.mean(axis=0)  # (4,)
    return SHAPES[int(means.argmax())], float(means.max())


def _run_end(centroids: np.ndarray, blobs: list[np.ndarray], s: float) -> int:
    """Index (into the object frames) of the last frame before the first bounce."""
    axis = int(np.ptp(centroids, axis=0).argmax())
    position = centroids[:, axis]
    tol = max(1.0, 0.75 * s)
    departed = np.nonzero(np.abs(position - position[0]) > tol)[0]
    if len(departed) == 0:
        return len(centroids) - 1  # not moving: measure it all
    sign = np.sign(position[departed[0]] - position[0])
    ahead = sign * position  # grows while moving away from the start
    best = 0
    for i in range(1, len(centroids)):
        best = i if ahead[i] > ahead[best] else best
        extent = np.nonzero(blobs[i].any(axis=1 - axis))[0]  # rows (axis 0) or columns (axis 1) the blob spans
        if (extent[-1] >= blobs[i].shape[axis] - 1) if sign > 0 else (extent[0] <= 0):
            return i  # touches the wall ahead
        if i > departed[0] and ahead[i] < ahead[best] - tol:
            return best  # came back: the bounce was at the farthest point
    return len(centroids) - 1


def _velocity(times: np.ndarray, centroids: np.ndarray, end: int) -> np.ndarray:
    """float (2,) least-squares (dy, dx) px/frame over the object frames [0, end]."""
    if end < 1:
        return np.zeros(2)
    return np.polyfit(times[:end + 1], centroids[:end + 1], 1)[0]


def _direction_ok(velocity: np.ndarray, caption: Caption, unit: float, either_sign: bool) -> bool:
    """`unit`: px/frame of speed 1 (s at 8 fps)."""
    step = np.array(DIRECTIONS[caption.direction])
    axis = int(np.abs(step).argmax())
    along = velocity[axis] * step[axis]  # px/frame in the caption's direction
    along = abs(along) if either_sign else along
    return bool(abs(velocity[axis]) > abs(velocity[1 - axis]) and along >= MIN_SPEED * unit)


def _speed_ok(velocity: np.ndarray, caption: Caption, unit: float) -> bool:
    speed = float(np.hypot(*velocity)) / unit
    other = next(value for name, value in SPEEDS.items() if name != caption.speed)
    return abs(speed - SPEEDS[caption.speed]) < abs(speed - other)


def _nearest_colour(rgb: np.ndarray) -> str:
    """The palette colour nearest to rgb once its brightest channel is scaled to 255 (as in every palette colour)."""
    names = list(PALETTE)
    rgb = rgb * 255 / max(float(rgb.max()), 1.0)
    distances = np.linalg.norm(np.array([PALETTE[n] for n in names], float) - rgb, axis=1)
    return names[int(distances.argmin())]


def check_video(frames: np.ndarray, caption: str | Caption, *, either_sign: bool = False,
                fps: float = FPS) -> VideoCheck:
    """Check uint8 (T,H,W,3) frames (T ≥ 2, any H×W) at `fps` against a caption (see the file header)."""
    caption = Caption.parse(caption) if isinstance(caption, str) else caption
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"check_video needs uint8 (T,H,W,3) frames with T >= 2, got {frames.dtype} "
                         f"{frames.shape}; convert with np.asarray(video, np.uint8) or read_video")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    size = frames.shape[1:3]
    s, box = scale(size), box_size(size)
    unit = s * FPS / fps  # px/frame of speed 1
    # 1. object
    found = [(t, blob) for t, frame in enumerate(frames) if (blob := find_blob(frame, box)) is not None]
    fraction = len(found) / len(frames)
    if fraction < OBJECT_FRAMES or len(found) < 2:
        return VideoCheck(False, False, False, False, False, object_fraction=fraction)
    times = np.array([t for t, _ in found], float)
    blobs = [blob for _, blob in found]
    centroids = np.array([np.argwhere(blob).mean(axis=0) for blob in blobs])  # (n, 2) (y, x)
    # 2. color
    rgb = np.median([_interior_rgb(frames[int(t)], blob, s) for t, blob in found], axis=0)
    colour = _nearest_colour(rgb)
    # 3. shape
    shape, iou = _measure_shape(blobs, centroids, box)
    # 4. direction and speed
    end = _run_end(centroids, blobs, s)
    velocity = _velocity(times, centroids, end)
    return VideoCheck(
        object=True, color=colour == caption.color, shape=shape == caption.shape and iou >= MIN_IOU,
        direction=_direction_ok(velocity, caption, unit, either_sign), speed=_speed_ok(velocity, caption, unit),
        object_fraction=fraction, measured_color=colour, rgb=tuple(int(round(c)) for c in rgb),
        measured_shape=shape, iou=iou, velocity=(float(velocity[0]), float(velocity[1])),
        run_frames=int(times[end] - times[0]) + 1,
    )


# --------------------------------------------------------------------------------------------- reports
def score(checks: Sequence[VideoCheck]) -> dict:
    """Accuracy per attribute and 'overall' (fraction passed), the overall accuracy's standard error
    ('overall_stderr', binomial: sqrt(p(1 - p) / n)), plus 'num'; accuracies are None when empty."""
    num = len(checks)
    report = {name: (sum(getattr(c, name) for c in checks) / num if num else None) for name in ATTRIBUTES}
    overall = sum(c.passed for c in checks) / num if num else None
    report["overall"] = overall
    report["overall_stderr"] = math.sqrt(overall * (1 - overall) / num) if num else None
    report["num"] = num
    return report


def format_table(reports: Mapping[str, dict]) -> str:
    """Plain-text table: a row per split (e.g. seen, heldout), accuracies in %, the overall one's standard error
    (± points: two runs differing by less than about twice it are not told apart), then n."""
    return evaluation.format_table(dict(reports), (*ATTRIBUTES, "overall"))
