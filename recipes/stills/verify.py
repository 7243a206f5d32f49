"""The stills motion check (recipes/stills/README.md, "The motion check"): which way does the camera move in a clip,
and is it the way its caption says?

Why block matching and not a log-polar phase correlation: zoom and roll are small between two frames (a few
tenths of a pixel at the frame's edge at 64×64 and 16 fps), where a log-polar resampling of a 64-pixel frame has
bins of several degrees; and the clips hold other motions (a foreground picture, an occluder) that one global
transform would average in. A coarse flow, fitted robustly, measures pan, tilt, zoom and roll at once and leaves
the other motions out as outliers.

Per pair of frames `gap` apart (gap = round(fps / 8): the same time apart at any rate), on grey frames:
1. block flow: blocks of side B (the largest power of 2 up to a quarter of the short side, at least 8: shifts up
   to B/2 are measured) every B/2, each matched by phase correlation (Hann window, sub-pixel by a parabola
   through the peak) against the second frame's block at the same place; blocks whose standard deviation is
   under MIN_TEXTURE grey levels have nothing to match and are dropped;
2. a similarity flow u = tx + a·x − b·y, v = ty + a·y + b·x (x, y from the frame's centre, y down; tx, ty the
   picture's shift, a its growth (divergence / 2), b its clockwise turn (curl / 2)), fitted twice: from the
   shift most blocks share, and from no motion, each refitted by least squares three times on the blocks within
   NEAR px (then 3 × their median residual) of the current fit. The fit that moves the more pixels of the first
   frame onto the second within EXPLAINED grey levels wins: the motion of most of the picture, not a mean with a
   foreground picture or an occluder (over a flat background an occluder's blocks can be the most).
Per clip, the rates per second are the means over pairs: pan = −tx / W, tilt = −ty / H (the camera moves
opposite to the picture), zoom = −a (the view's log-size: below 0 it zooms in), roll = −b (radians, clockwise
positive). Each is divided by its slowest drawn speed (0.15 frame sides/s, 0.2/s, 10°/s); the largest ratio names
the motion when it is at least MOVING, otherwise the camera is still. Two verdicts come first:
- cut: the pair of consecutive frames with the largest difference after the whole frames' phase-correlation
  shift (mean absolute, grey levels) is a cut when that difference is over CUT_JUMP × the others' median plus 2
  and its correlation peak under half theirs; the pairs across the cut are left out of the rates;
- shake: the camera's path (the sum of its shifts' lengths) covers at least SHAKE_PATH frame sides a second
  while its net shift is under SHAKE_NET of the path, with no zoom or roll.
Over a still camera, a moving picture (an occluder) is the centroid of the frame differences |f_t − f_{t−gap}|,
whose least-squares velocity must be at least OBJECT_SPEED frame sides a second, with at least OBJECT_ENERGY grey
levels of difference on average.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from t2v.recipes.stills.dataset import Caption
from t2v.recipes.stills.motion import PAN_SPEED, ROLL_RATE, ZOOM_RATE

MOVING = 0.4  # × the slowest drawn speed: slower is a still camera
CUT_JUMP = 4.0
SHAKE_PATH = 0.06  # frame sides per second
SHAKE_NET = 0.5
OBJECT_SPEED = 0.1  # frame sides per second
OBJECT_ENERGY = 1.0  # grey levels of |f_t − f_{t−gap}|, mean over the frame
NEAR = 0.75  # px: a block this close to a flow is one of its blocks (or 3 × their median residual, if more)
EXPLAINED = 3.0  # grey levels: a pixel a flow moves onto its match within this is explained by it
MIN_TEXTURE = 1.0  # grey levels: a block's standard deviation below this has nothing to match
LABELS = ("still", "pan left", "pan right", "tilt up", "tilt down", "zoom in", "zoom out", "rotate clockwise",
          "rotate counterclockwise", "shake", "cut")


# --------------------------------------------------------------------------------------------- phase correlation
def _hann(height: int, width: int) -> np.ndarray:
    return np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)


def _peak(surface: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, h, w) correlation surfaces → sub-pixel peak (dy, dx) each (N,), and the peak heights (N,)."""
    count, height, width = surface.shape
    flat = surface.reshape(count, -1).argmax(axis=1)
    iy, ix = np.unravel_index(flat, (height, width))
    rows = np.arange(count)

    def refine(minus: np.ndarray, centre: np.ndarray, plus: np.ndarray) -> np.ndarray:
        denominator = minus - 2 * centre + plus
        return np.where(np.abs(denominator) > 1e-9, 0.5 * (minus - plus) / np.where(denominator == 0, 1, denominator),
                        0.0).clip(-0.5, 0.5)

    centre = surface[rows, iy, ix]
    dy = refine(surface[rows, (iy - 1) % height, ix], centre, surface[rows, (iy + 1) % height, ix])
    dx = refine(surface[rows, iy, (ix - 1) % width], centre, surface[rows, iy, (ix + 1) % width])
    wrap_y = np.where(iy > height // 2, iy - height, iy)
    wrap_x = np.where(ix > width // 2, ix - width, ix)
    return wrap_y + dy, wrap_x + dx, centre


def phase_correlation(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, h, w) pairs of patches → the shift (dy, dx) that moves `first` onto `second`, and the peak heights."""
    window = _hann(*first.shape[-2:])
    a = np.fft.rfft2((first - first.mean(axis=(-2, -1), keepdims=True)) * window)
    b = np.fft.rfft2((second - second.mean(axis=(-2, -1), keepdims=True)) * window)
    cross = b * np.conj(a)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-6), s=first.shape[-2:])
    return _peak(surface)


# --------------------------------------------------------------------------------------------- flow of a pair
def block_side(size: tuple[int, int]) -> int:
    """The block side B: the largest power of 2 up to a quarter of the short side, at least 8."""
    return max(8, 2 ** int(math.log2(max(1, min(size) // 4))))


@dataclass
class PairMotion:
    """A pair's fitted similarity flow (px per pair, radians), its global shift, peak and aligned difference."""

    tx: float
    ty: float
    a: float
    b: float
    blocks: int  # blocks the fit kept
    peak: float  # the global phase correlation's peak height
    difference: float  # mean |second − first shifted by the global shift|, grey levels


def pair_motion(first: np.ndarray, second: np.ndarray) -> PairMotion:
    """The camera's similarity flow between two grey (H, W) frames."""
    height, width = first.shape
    (gy,), (gx,), (peak,) = phase_correlation(first[None], second[None])
    sy, sx = int(round(gy)), int(round(gx))
    aligned = second[max(0, sy):height + min(0, sy), max(0, sx):width + min(0, sx)]
    original = first[max(0, -sy):height + min(0, -sy), max(0, -sx):width + min(0, -sx)]
    difference = float(np.abs(aligned - original).mean()) if aligned.size else float("inf")
    side = block_side((height, width))
    starts = [(y, x) for y in range(0, height - side + 1, side // 2) for x in range(0, width - side + 1, side // 2)]
    one = np.stack([first[y:y + side, x:x + side] for y, x in starts])
    two = np.stack([second[y:y + side, x:x + side] for y, x in starts])
    textured = (one.std(axis=(1, 2)) >= MIN_TEXTURE) & (two.std(axis=(1, 2)) >= MIN_TEXTURE)
    dy, dx, _ = phase_correlation(one, two)
    centres = np.array(starts, np.float64) + side / 2 - [height / 2, width / 2]  # (N, 2) (y, x)
    fits = [_fit(centres[textured], dx[textured], dy[textured], start) for start in ("crowd", "zero")]
    tx, ty, a, b, kept = max(fits, key=lambda fit: explained(first, second, fit[:4]))
    return PairMotion(tx, ty, a, b, kept, float(peak), difference)


def explained(first: np.ndarray, second: np.ndarray, params: tuple[float, ...]) -> float:
    """The fraction of `second`'s pixels (of those the flow maps inside `first`) within EXPLAINED grey levels of
    `first` moved by the similarity flow `params` (tx, ty, a, b)."""
    height, width = first.shape
    tx, ty, a, b = params
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = y - (height - 1) / 2, x - (width - 1) / 2
    source_y, source_x = y - (ty + a * cy + b * cx), x - (tx + a * cx - b * cy)
    inside = (source_y >= 0) & (source_y <= height - 1) & (source_x >= 0) & (source_x <= width - 1)
    if not inside.any():
        return 0.0
    moved = ndimage.map_coordinates(first, [source_y[inside], source_x[inside]], order=1)
    return float((np.abs(moved - second[inside]) <= EXPLAINED).mean())


def _fit(centres: np.ndarray, u: np.ndarray, v: np.ndarray, start: str) -> tuple[float, float, float, float, int]:
    """Similarity flow (tx, ty, a, b) of block displacements, refitted by least squares on the blocks near the
    current fit three times, from the shift most blocks share (`start` "crowd") or from no motion ("zero")."""
    if len(u) < 3:
        return (float(np.median(u)) if len(u) else 0.0, float(np.median(v)) if len(v) else 0.0, 0.0, 0.0, len(u))
    y, x = centres[:, 0], centres[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    design = np.concatenate([np.stack([ones, zeros, x, -y], 1), np.stack([zeros, ones, y, x], 1)])  # (2N, 4)
    target = np.concatenate([u, v])
    crowd = (np.hypot(u[:, None] - u[None], v[:, None] - v[None]) <= 0.75).sum(axis=1).argmax()
    params = np.array([u[crowd], v[crowd], 0.0, 0.0]) if start == "crowd" else np.zeros(4)
    keep = np.ones(len(u), bool)
    limit = NEAR
    for _ in range(3):
        residual = np.hypot(*(design @ params - target).reshape(2, -1))
        near = residual <= limit
        if near.sum() < 3:
            break
        keep = near
        rows = np.concatenate([keep, keep])
        params = np.linalg.lstsq(design[rows], target[rows], rcond=None)[0]
        limit = max(NEAR, 3 * float(np.median(residual[keep])))
    return float(params[0]), float(params[1]), float(params[2]), float(params[3]), int(keep.sum())


# --------------------------------------------------------------------------------------------- a clip
def grey(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) → float32 (T, H, W) luma (BT.601)."""
    return (frames[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))


def find_cut(pairs: list[PairMotion]) -> int | None:
    """The first frame of a new shot, from the motions of the consecutive pairs of frames, or None."""
    if len(pairs) < 2:
        return None
    difference = np.array([p.difference for p in pairs])
    peak = np.array([p.peak for p in pairs])
    t = int(difference.argmax())
    others = np.delete(np.arange(len(pairs)), t)
    if difference[t] > CUT_JUMP * np.median(difference[others]) + 2 and peak[t] < 0.5 * np.median(peak[others]):
        return t + 1
    return None


def measure(frames: np.ndarray, fps: float = 8.0) -> dict:
    """What the camera does in uint8 (T, H, W, 3) frames at `fps`: the rates per second (pan and tilt in frame
    sides, zoom in log-size, roll in radians, clockwise positive), the shake's path and net shift, a cut, and a
    moving picture's velocity (frame sides per second, (x, y)) and difference energy."""
    if len(frames) < 2:
        raise ValueError(f"a motion check needs at least 2 frames, got {len(frames)}")
    luma = grey(frames)
    count, height, width = luma.shape
    gap = max(1, min(count - 1, round(fps / 8)))
    consecutive = [pair_motion(luma[t], luma[t + 1]) for t in range(count - 1)]
    cut = find_cut(consecutive)
    starts = [t for t in range(count - gap) if cut is None or not t < cut <= t + gap]
    pairs = [consecutive[t] if gap == 1 else pair_motion(luma[t], luma[t + gap]) for t in starts]
    per_second = fps / gap
    shifts = np.array([[p.tx / width, p.ty / height] for p in pairs]) if pairs else np.zeros((0, 2))
    path = float(np.hypot(*shifts.T).sum() / gap) if pairs else 0.0
    net = float(np.hypot(*shifts.sum(axis=0)) / gap) if pairs else 0.0
    duration = (count - 1) / fps
    rates = {
        "pan": -float(np.mean([p.tx for p in pairs]) * per_second / width) if pairs else 0.0,
        "tilt": -float(np.mean([p.ty for p in pairs]) * per_second / height) if pairs else 0.0,
        "zoom": -float(np.mean([p.a for p in pairs]) * per_second) if pairs else 0.0,
        "roll": -float(np.mean([p.b for p in pairs]) * per_second) if pairs else 0.0,
    }
    return {"rates": rates, "path": path / duration, "net": net / duration, "cut": cut,
            "object": _moving_picture(luma, gap, fps, cut), "gap": gap}


def _moving_picture(luma: np.ndarray, gap: int, fps: float, cut: int | None) -> dict:
    """The velocity (x, y) in frame sides per second of the centroid of the frame differences, and their energy."""
    count, height, width = luma.shape
    ys, xs = np.arange(height) + 0.5, np.arange(width) + 0.5
    times, points, energies = [], [], []
    for t in range(gap, count):
        if cut is not None and t - gap < cut <= t:
            continue
        weight = np.abs(luma[t] - luma[t - gap])
        total = float(weight.sum())
        energies.append(total / weight.size)
        if total > 0:
            times.append((t - gap / 2) / fps)
            points.append([(weight.sum(axis=0) @ xs) / total / width, (weight.sum(axis=1) @ ys) / total / height])
    velocity = (0.0, 0.0)
    if len(times) >= 2:
        slope = np.polyfit(np.array(times), np.array(points), 1)[0]
        velocity = (float(slope[0]), float(slope[1]))
    return {"velocity": velocity, "energy": float(np.mean(energies)) if energies else 0.0}


def classify(measured: dict) -> str:
    """The camera's motion, one of LABELS, from `measure`'s numbers."""
    if measured["cut"] is not None:
        return "cut"
    rates = measured["rates"]
    slowest = {"pan": PAN_SPEED[0], "tilt": PAN_SPEED[0], "zoom": ZOOM_RATE[0], "roll": math.radians(ROLL_RATE[0])}
    ratios = {name: abs(rates[name]) / slowest[name] for name in rates}
    if (measured["path"] >= SHAKE_PATH and measured["net"] < SHAKE_NET * measured["path"]
            and max(ratios["zoom"], ratios["roll"]) < MOVING):
        return "shake"
    name = max(ratios, key=ratios.get)
    if ratios[name] < MOVING:
        return "still"
    positive = rates[name] > 0
    return {"pan": ("pan left", "pan right"), "tilt": ("tilt up", "tilt down"), "zoom": ("zoom in", "zoom out"),
            "roll": ("rotate counterclockwise", "rotate clockwise")}[name][int(positive)]


def picture_direction(measured: dict) -> str | None:
    """The direction a picture moves over a still camera (left, right, up, down), or None."""
    vx, vy = measured["object"]["velocity"]
    if measured["object"]["energy"] < OBJECT_ENERGY or max(abs(vx), abs(vy)) < OBJECT_SPEED:
        return None
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


def expected(caption: Caption) -> tuple[str, str | None]:
    """The camera label and the moving picture's direction (occlusion only) a caption calls for."""
    kind, direction = caption.kind, caption.direction
    if kind in ("pan", "tilt", "zoom", "rotate"):
        return f"{kind} {direction}", None
    if kind == "parallax":
        return ("pan " if direction in ("left", "right") else "tilt ") + direction, None
    if kind == "occlusion":
        return "still", direction
    return kind, None  # still, shake, cut


def check_clip(frames: np.ndarray, caption: Caption | str, fps: float = 8.0) -> dict:
    """Does uint8 (T, H, W, 3) `frames` at `fps` move as `caption` says? {"passed", "expected", "measured", …}.

    A caption of camera motion (pan, tilt, zoom, rotate, parallax: its camera's pan or tilt) passes when the
    measured label is the one it calls for; a shake and a cut likewise; a still shot when the camera is still and
    nothing moves over it; an occlusion when the camera is still and the picture over it moves the caption's
    way."""
    caption = Caption.parse(caption) if isinstance(caption, str) else caption
    measured = measure(frames, fps)
    label = classify(measured)
    want_label, want_picture = expected(caption)
    picture = picture_direction(measured) if label == "still" else None
    passed = label == want_label and picture == want_picture if label == "still" else label == want_label
    return {"passed": passed, "expected": want_label + (f", a picture moving {want_picture}" if want_picture else ""),
            "measured": label + (f", a picture moving {picture}" if picture else ""), "label": label,
            "picture": picture, **measured}
