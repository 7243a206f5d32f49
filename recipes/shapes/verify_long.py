"""The `shapes` verifier for long videos, per segment of 64 frames (recipes/shapes/README.md, "The verifier").

A long video is checked in segments of `segment` frame steps: segment k holds frames k·segment … (k+1)·segment, so
it shares its last frame with the next one (a jump between segments is inside one of them) and a video of
1 + n·segment frames (129, 1025) has n segments. A trailing part shorter than half a segment joins the last one.
Per segment, with s = min(H, W) / 64, v = the caption's speed (1·s or 2·s px/frame), tol = max(1, 0.75·s) px:
1. object, color, shape: `check_video` on the segment; a missing object fails every attribute, as there.
2. The track: per frame, the blob's centroid and its extent along the caption's axis (blobs by `find_blob`).
   Turns are found with hysteresis: a turn is the farthest point reached before the object comes back by more
   than tol; they cut the track into runs, each fitted by least squares (2D velocity).
3. direction: the runs' length-weighted mean speed along the caption's axis is ≥ MIN_SPEED·s and above the one
   across it (either sign: bounces reverse it); segment 0 must also pass `check_video`'s signed direction.
4. speed: that mean speed along the axis is nearer to the caption's speed than to the other one, and at least
   MIN_SPEED·s (an object at rest moves at neither speed).
5. bounce (elastic, consistent motion), all of:
   - no jump: every frame-to-frame centroid step is ≤ JUMP·v + tol px/frame;
   - turns only at walls: at each turn the box is within max(v, measured speed) + tol px of the wall it moved
     towards (a sampled bounce can stop up to one step short of the wall);
   - runs are straight and moving: every run of ≥ MIN_RUN frames moves ≥ MIN_SPEED·s px/frame along the axis,
     and its centroid stays within LINE·tol px of its fitted line. Its end frames are left out of the fit: a
     bounce between two frames puts them off both lines by up to v, and a bounce one frame from the segment's
     edge is too small for the hysteresis to see.
   So a stop, a reversal in mid-canvas and a teleport each fail `bounce`; a drift off the axis fails `direction`.
`direction_change_frame` finds where a video starts to move as a new caption says (after a prompt change).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

from t2v.recipes.shapes.dataset import DIRECTIONS, SPEEDS, Caption, box_size, scale
from t2v.recipes.shapes.verify import MIN_SPEED, check_video, find_blob

SEGMENT_ATTRIBUTES = ("object", "color", "shape", "direction", "speed", "bounce")
JUMP = 3.0  # × the caption's speed: a larger frame-to-frame step is a teleport
MIN_RUN = 4  # frames: shorter runs (at segment edges, fast bounces) are not judged for straightness or stops
LINE = 1.5  # × tol: how far a run's centroids may stray from its fitted line


@dataclass
class SegmentCheck:
    """Per-attribute verdicts on one segment [start, stop) of a long video, plus what was measured."""

    start: int
    stop: int
    object: bool
    color: bool
    shape: bool
    direction: bool
    speed: bool
    bounce: bool
    measured_speed: float = 0.0  # px/frame along the caption's axis, ÷ s
    turns: int = 0  # reversals along the axis
    max_step: float = 0.0  # largest frame-to-frame centroid step, px/frame
    max_wall_gap: float = 0.0  # largest distance to the wall at a turn, px
    max_residual: float = 0.0  # largest distance of a run's centroid from its line, px
    slowest_run: float = 0.0  # smallest speed along the axis over runs of ≥ MIN_RUN frames, ÷ s

    @property
    def passed_but_bounce(self) -> bool:
        """Every attribute but the bounce check: what a segment scores when only its motion's elasticity fails."""
        return all(getattr(self, name) for name in SEGMENT_ATTRIBUTES if name != "bounce")

    @property
    def passed(self) -> bool:
        return self.passed_but_bounce and self.bounce

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


@dataclass
class Track:
    """The blob's centroid per frame where it was found, and its extent along the caption's axis."""

    times: np.ndarray  # (n,) frame numbers
    centroids: np.ndarray  # (n, 2) (y, x)
    low: np.ndarray  # (n,) first row/column the blob covers along the axis
    high: np.ndarray  # (n,) last one


# --------------------------------------------------------------------------------------------- segments
def segment_bounds(num_frames: int, segment: int = 64) -> list[tuple[int, int]]:
    """[start, stop) of each segment: `segment` steps each, sharing boundary frames; a short tail joins the last."""
    if segment < 2:
        raise ValueError(f"a segment needs at least 2 frame steps, got {segment}")
    if num_frames < 2:
        raise ValueError(f"a long video needs at least 2 frames, got {num_frames}")
    starts = list(range(0, max(num_frames - 1, 1), segment))
    if len(starts) > 1 and num_frames - 1 - starts[-1] < segment / 2:
        starts.pop()  # the tail joins the segment before it
    return [(start, min(next_start + 1, num_frames)) for start, next_start in
            zip(starts, [*starts[1:], num_frames - 1])]


def _track(frames: np.ndarray, axis: int, first: int = 0) -> Track:
    """The blob's track over uint8 (T,H,W,3) frames, frame numbers counted from `first`."""
    box = box_size(frames.shape[1:3])
    times, centroids, low, high = [], [], [], []
    for t, frame in enumerate(frames):
        blob = find_blob(frame, box)
        if blob is None:
            continue
        covered = np.nonzero(blob.any(axis=1 - axis))[0]  # rows (axis 0) or columns (axis 1) the blob spans
        times.append(first + t)
        centroids.append(np.argwhere(blob).mean(axis=0))
        low.append(covered[0])
        high.append(covered[-1])
    return Track(np.array(times, float), np.array(centroids, float).reshape(-1, 2), np.array(low), np.array(high))


def _turns(position: np.ndarray, tol: float) -> list[int]:
    """Indices of the reversals: each the farthest point before the position comes back by more than tol."""
    turns, extreme, sign = [], 0, 0.0
    for i in range(1, len(position)):
        if sign == 0:  # not yet departed from the start
            if abs(position[i] - position[0]) > tol:
                sign = np.sign(position[i] - position[0])
                extreme = i
            continue
        if sign * position[i] > sign * position[extreme]:
            extreme = i
        elif sign * (position[extreme] - position[i]) > tol:
            turns.append(extreme)
            sign, extreme = -sign, i
    return turns


def _bounce_measures(track: Track, axis: int, size: int, tol: float) -> dict:
    """The motion's runs and how elastic it is (see the file header, steps 2 and 5), in px and px/frame."""
    position = track.centroids[:, axis]
    turns = _turns(position, tol)
    bounds = [0, *turns, len(position) - 1]
    steps = np.diff(track.centroids, axis=0) / np.diff(track.times)[:, None]  # (n-1, 2) px/frame
    runs, residuals, gaps = [], [0.0], [0.0]
    for a, b in zip(bounds, bounds[1:]):
        if b - a < 1:
            continue
        velocity = np.polyfit(track.times[a:b + 1], track.centroids[a:b + 1], 1)[0]  # (2,) (dy, dx)
        runs.append((track.times[b] - track.times[a], velocity))
        inner = slice(a + 1, b)  # a bounce between two frames puts them off both lines: fit between the ends
        if track.times[b] - track.times[a] + 1 >= MIN_RUN and b - a >= 3:
            line = np.polyfit(track.times[inner], position[inner], 1)
            residuals.append(float(np.abs(np.polyval(line, track.times[inner]) - position[inner]).max()))
        if b in turns:
            ahead = position[b] > position[a]
            gaps.append(float(size - 1 - track.high[b] if ahead else track.low[b]))
    return {"runs": runs, "turns": len(turns), "max_residual": max(residuals), "max_wall_gap": max(gaps),
            "max_step": float(np.hypot(*steps.T).max()) if len(steps) else 0.0}


def _check_segment(frames: np.ndarray, caption: Caption, start: int, first: bool) -> SegmentCheck:
    """Check one segment (uint8 (T,H,W,3), its first frame number `start`); `first`: the video's first segment."""
    stop = start + len(frames)
    # 1. object, color, shape (and segment 0's signed direction)
    verdict = check_video(frames, caption, either_sign=not first)
    if not verdict.object:
        return SegmentCheck(start, stop, False, False, False, False, False, False)
    size = frames.shape[1:3]
    s = scale(size)
    tol, speed = max(1.0, 0.75 * s), SPEEDS[caption.speed] * s
    axis = int(np.abs(DIRECTIONS[caption.direction]).argmax())
    # 2. the track and its runs
    track = _track(frames, axis, start)
    measures = _bounce_measures(track, axis, size[axis], tol)
    durations = np.array([d for d, _ in measures["runs"]])  # (runs,)
    velocities = np.array([v for _, v in measures["runs"]]).reshape(-1, 2)  # (runs, 2)
    weights = durations / max(durations.sum(), 1e-9)
    along = float(weights @ np.abs(velocities[:, axis]))
    across = float(weights @ np.abs(velocities[:, 1 - axis]))
    judged = durations + 1 >= MIN_RUN
    slowest = float(np.abs(velocities[judged, axis]).min()) if judged.any() else along
    # 3.–5. the verdicts
    other = next(value for name, value in SPEEDS.items() if name != caption.speed)
    measured = along / s
    bounce = (measures["max_step"] <= JUMP * speed + tol and measures["max_wall_gap"] <= max(speed, along) + tol
              and measures["max_residual"] <= LINE * tol and slowest >= MIN_SPEED * s)
    return SegmentCheck(
        start, stop, True, verdict.color, verdict.shape,
        direction=along >= MIN_SPEED * s and along > across and (verdict.direction or not first),
        speed=abs(measured - SPEEDS[caption.speed]) < abs(measured - other) and measured >= MIN_SPEED,
        bounce=bool(bounce),
        measured_speed=measured, turns=measures["turns"], max_step=measures["max_step"],
        max_wall_gap=measures["max_wall_gap"], max_residual=measures["max_residual"], slowest_run=slowest / s,
    )


class SegmentStream:
    """Checks a long video's segments as its frames arrive, holding only the current segment's frames."""

    def __init__(self, caption: str | Caption, num_frames: int, segment: int = 64) -> None:
        self.caption = Caption.parse(caption) if isinstance(caption, str) else caption
        self.bounds = segment_bounds(num_frames, segment)
        self.num_frames = num_frames
        self._frames: list[np.ndarray] = []  # uint8 (H,W,3) from the current segment's start
        self._seen = 0  # frames received
        self._next = 0  # index of the segment to check next

    def push(self, chunk: np.ndarray) -> list[SegmentCheck]:
        """Add uint8 (T_i,H,W,3) frames; the checks of the segments they complete."""
        if self._seen + len(chunk) > self.num_frames:
            raise ValueError(f"got {self._seen + len(chunk)} frames, more than the {self.num_frames} announced")
        self._frames.extend(chunk)
        self._seen += len(chunk)
        return list(self._complete())

    def _complete(self) -> Iterator[SegmentCheck]:
        while self._next < len(self.bounds) and self.bounds[self._next][1] <= self._seen:
            start, stop = self.bounds[self._next]
            offset = self._seen - len(self._frames)  # frame number of self._frames[0]
            yield _check_segment(np.stack(self._frames[start - offset:stop - offset]), self.caption, start,
                                 first=self._next == 0)
            self._next += 1
            keep_from = self.bounds[self._next][0] if self._next < len(self.bounds) else self._seen
            del self._frames[:keep_from - offset]

    @property
    def done(self) -> bool:
        return self._next == len(self.bounds)


def check_long_video(frames: np.ndarray, caption: str | Caption, segment: int = 64) -> list[SegmentCheck]:
    """Check uint8 (T,H,W,3) frames against a caption, segment by segment (see the file header)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"check_long_video needs uint8 (T,H,W,3) frames, got {frames.dtype} {frames.shape}")
    return SegmentStream(caption, len(frames), segment).push(frames)


# --------------------------------------------------------------------------------------------- prompt changes
def direction_change_frame(frames: np.ndarray, caption_after: str | Caption, start: int, within: int = 16,
                           horizon: int = 16) -> int | None:
    """The first frame t in [start, start + within] from which the object moves as `caption_after` says (axis and
    sign: `check_video`'s direction over frames t … t + horizon), or None. Starting against the wall ahead, the
    bounce away from it counts as that motion."""
    caption = Caption.parse(caption_after) if isinstance(caption_after, str) else caption_after
    frames = np.asarray(frames)
    step = np.array(DIRECTIONS[caption.direction])
    axis = int(np.abs(step).argmax())
    size = frames.shape[1:3]
    reach = SPEEDS[caption.speed] * scale(size) + max(1.0, 0.75 * scale(size))
    for t in range(start, min(start + within, len(frames) - 2) + 1):
        window = frames[t:t + horizon + 1]
        blob = find_blob(window[0], box_size(size))
        if blob is None:
            continue
        covered = np.nonzero(blob.any(axis=1 - axis))[0]
        at_wall = covered[0] < reach if step[axis] < 0 else size[axis] - 1 - covered[-1] < reach
        if check_video(window, caption, either_sign=at_wall).direction:
            return t
    return None


# --------------------------------------------------------------------------------------------- reports
def score_segments(videos: Sequence[Sequence[SegmentCheck]]) -> list[dict]:
    """Per segment index: accuracy per attribute, 'overall' and 'but_bounce' (every attribute but the bounce) over
    the videos that have it, 'num' and its frames."""
    report = []
    for index in range(max((len(v) for v in videos), default=0)):
        checks = [v[index] for v in videos if len(v) > index]
        row = {"segment": index, "frames": [checks[0].start, checks[0].stop]}
        row.update({name: sum(getattr(c, name) for c in checks) / len(checks) for name in SEGMENT_ATTRIBUTES})
        row.update(overall=sum(c.passed for c in checks) / len(checks),
                   but_bounce=sum(c.passed_but_bounce for c in checks) / len(checks), num=len(checks))
        report.append(row)
    return report


def format_segments(report: Sequence[Mapping], extra: Sequence[str] = ()) -> str:
    """Plain-text table of `score_segments` rows: accuracies in %, then n and any `extra` columns as they are."""
    columns = (*SEGMENT_ATTRIBUTES, "overall", "but_bounce")
    lines = [f"{'segment':>7} {'frames':>11} " + " ".join(f"{c:>9}" for c in (*columns, "n", *extra))]
    for row in report:
        cells = [f"{100 * row[c]:.1f}" for c in columns] + [str(row["num"])]
        cells += ["-" if row.get(c) is None else f"{row[c]:.4g}" for c in extra]
        lines.append(f"{row['segment']:>7} {'%d-%d' % (row['frames'][0], row['frames'][1] - 1):>11} "
                     + " ".join(f"{c:>9}" for c in cells))
    return "\n".join(lines)
