"""Video files ↔ uint8 frames: the project's only user of imageio and PyAV.

Reading: every video file (.mp4 .webm .avi .gif .mkv .mov …) is decoded with PyAV, which decodes exactly and
raises on corrupt data (OpenCV silently truncates; imageio's own random access is slower). A directory of
image frames (png/jpg, sorted by name) is read with imageio; its own fps is the number in its `fps.txt`, else
the `fps` argument, else 8.

Notable choices:
- One decoding path: `iter_video` yields chunks of `(T,H,W,3)` uint8, `read_video` concatenates them, so memory
  is bounded by `chunk_frames` for any length.
- `start` seeks (keyframe before `start`, then decodes forward and drops frames whose timestamp is before
  `start`); times are measured from the stream's first timestamp.
- fps resampling is by frame timestamps: target time `start + k/fps` takes the last frame whose time is <= the
  target, so variable-frame-rate files are resampled correctly.
- Decoding uses FFmpeg's automatic threading (a thread pool per open file); `set_decode_threads(1)` decodes on
  the calling thread, as DataLoader workers do: for small frames a pool costs more than it saves, and many
  workers' pools would fight the trainer for the cores.
- A file that ends early (decoded frames stop short of the duration in its header) raises ValueError, never
  returns fewer frames silently.
- Writing streams (`VideoWriter`) to a temporary sibling and renames it into place on success only: mp4 is
  H.264/yuv420p at CRF 12 (flat colours keep within ~2 levels inside an object; its 1–2 px rim is blended by
  the halved chroma resolution; width and height must be even), webm is VP9 (CRF 20), gif uses a per-frame
  palette (ffmpeg palettegen/paletteuse), .png/.jpg holds one frame, and a path with no suffix (or ending in
  '/') becomes a new folder of `frame_00000.png` … with `fps.txt` and the marker `.t2v-frames`.
- What an output may replace is tokenizer/outputs.py's rule, checked when the writer is made and again before
  its rename: an existing file or frame folder of ours only with `overwrite=True`, a folder of anything else
  never, and a file never replaces a folder (nor a folder a file).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.filter
import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from t2v.core.atomic import temp_sibling
from t2v.tokenizer.outputs import FPS_FILE, FRAME_MARKER, FRAMES, IMAGE, check_output, place_output, remove

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_FRAME_DIR_FPS = 8.0
_EPS = 1e-6  # seconds: tolerance when comparing frame times with target times
_decode_threads = 0  # 0 = FFmpeg's automatic thread pool; see set_decode_threads


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says (num_frames is None when the header does not say)."""

    path: str
    fps: float
    num_frames: int | None
    duration: float
    width: int
    height: int


# --------------------------------------------------------------------------------------------- reading helpers
def _check_exists(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    return path


def _unreadable(path: Path, reason: object) -> ValueError:
    return ValueError(f"cannot read video {path}: {reason}; re-encode or remove the file "
                      f"(e.g. ffmpeg -i in -c:v libx264 -pix_fmt yuv420p out.mp4)")


def _frame_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise _unreadable(path, f"the directory has no image frames ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _frame_dir_fps(path: Path, fps: float | None) -> float:
    """A frame directory's own fps: its fps.txt, else the requested fps, else 8."""
    fps_file = path / FPS_FILE
    if fps_file.exists():
        try:
            return float(fps_file.read_text().strip())
        except ValueError:
            raise _unreadable(path, f"{fps_file} does not hold a number") from None
    return float(fps) if fps is not None else DEFAULT_FRAME_DIR_FPS


def set_decode_threads(count: int) -> None:
    """Decode with `count` threads in this process from now on (0 = FFmpeg's automatic choice, 1 = no pool)."""
    global _decode_threads
    if count < 0:
        raise ValueError(f"decode threads must be >= 0 (0 = automatic), got {count}")
    _decode_threads = count


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise _unreadable(path, error) from None
    if not container.streams.video:
        container.close()
        raise _unreadable(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = _decode_threads
    return container, stream


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's header (fps, frame count, duration, size) without decoding it."""
    path = _check_exists(path)
    if path.is_dir():
        files = _frame_files(path)
        fps = _frame_dir_fps(path, None)
        height, width = iio.imread(files[0]).shape[:2]
        return VideoInfo(str(path), fps, len(files), len(files) / fps, width, height)
    container, stream = _open(path)
    with container:
        fps = _stream_fps(stream)
        num_frames = stream.frames or None
        duration = _stream_duration(container, stream) or ((num_frames or 0) / fps if fps else 0.0)
        return VideoInfo(str(path), fps, num_frames, duration, stream.width, stream.height)


def _timed_frames_dir(path: Path, fps: float, start: float) -> Iterator[tuple[float, float, np.ndarray]]:
    """(time, duration, frame) for each image of a frame directory from `start` on."""
    for k, file in enumerate(_frame_files(path)):
        if (k + 1) / fps <= start + _EPS:
            continue
        try:
            image = iio.imread(file)
        except Exception as error:  # imageio raises many types for a bad image
            raise _unreadable(path, f"{file.name}: {error}") from None
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        yield k / fps, 1 / fps, np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _decode_from(path: Path, start: float, seek: bool) -> Iterator[tuple[float, float, av.VideoFrame]]:
    """(time, duration, frame) for decoded frames, after seeking to the keyframe before `start` if `seek`."""
    container, stream = _open(path)
    with container:
        origin = stream.start_time or 0
        time_base = stream.time_base
        fallback_duration = 1 / _stream_fps(stream) if _stream_fps(stream) else 0.0
        header_end = _stream_duration(container, stream)
        seeked = False
        if seek and start > 0 and time_base:
            try:
                container.seek(origin + int(start / time_base), stream=stream, backward=True)
                seeked = True
            except av.FFmpegError:
                return  # the caller falls back to decoding from the beginning
        last_end = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                time = float((frame.pts - origin) * time_base)
                duration = float(frame.duration * time_base) if frame.duration else fallback_duration
                last_end = time + duration
                yield time, duration, frame  # converted to RGB only if selected
        except av.FFmpegError as error:
            raise _unreadable(path, error) from None
        if last_end is None and not seeked:
            raise _unreadable(path, "no frame could be decoded")
        if last_end is not None and header_end and last_end < header_end - max(2 * fallback_duration, 0.1):
            raise _unreadable(path, f"the file ends at {last_end:.3f}s but its header says {header_end:.3f}s "
                                    "(truncated?)")


def _timed_frames(path: Path, start: float) -> Iterator[tuple[float, float, av.VideoFrame]]:
    """(time, duration, frame) of a video file from about `start` on: seek, or decode from 0 if seeking fails."""
    if start > 0:
        decoded = _decode_from(path, start, seek=True)
        first = next(decoded, None)
        if first is not None and first[0] <= start + _EPS:  # landed on a keyframe at or before `start`
            yield first
            yield from decoded
            return
        decoded.close()
    yield from _decode_from(path, start, seek=False)


def _rgb(frame: np.ndarray | av.VideoFrame) -> np.ndarray:
    return frame if isinstance(frame, np.ndarray) else frame.to_ndarray(format="rgb24")


def _select(frames: Iterator[tuple[float, float, np.ndarray | av.VideoFrame]], fps: float | None, start: float,
            end: float) -> Iterator[np.ndarray]:
    """Pick frames in [start, end): all of them (fps None) or, per target time start + k/fps, the last frame
    whose time is <= the target (the first frame for a target before it)."""
    if fps is None:
        for time, _, image in frames:
            if time + _EPS >= end:
                return
            if time + _EPS >= start:
                yield _rgb(image)
        return
    k, previous, previous_end = 0, None, 0.0
    for time, duration, image in frames:
        while (target := start + k / fps) < end and target + _EPS < time:
            previous = _rgb(image if previous is None else previous)
            yield previous
            k += 1
        if start + k / fps >= end:
            return
        previous, previous_end = image, time + duration
    while previous is not None and (target := start + k / fps) < end and target < previous_end - _EPS:
        previous = _rgb(previous)
        yield previous
        k += 1


def iter_video(path: str | os.PathLike, *, chunk_frames: int = 64, fps: float | None = None, start: float = 0.0,
               end: float | None = None, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream a video's frames in [start, end) as uint8 (T,H,W,3) chunks of at most `chunk_frames` frames.

    fps=None keeps the native frames; otherwise frames are resampled by timestamp to `fps`.
    Example: `for chunk in iter_video("a.mp4", fps=8, start=2.0): ...`
    """
    path = _check_exists(path)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if path.is_dir():
        timed = _timed_frames_dir(path, _frame_dir_fps(path, fps), start)
    else:
        timed = _timed_frames(path, start)
    chunk: list[np.ndarray] = []
    count = 0
    for image in _select(timed, fps, start, math.inf if end is None else end):
        chunk.append(image)
        count += 1
        if len(chunk) == chunk_frames or count == max_frames:
            yield np.stack(chunk)
            chunk = []
        if count == max_frames:
            return
    if chunk:
        yield np.stack(chunk)


def read_video(path: str | os.PathLike, *, fps: float | None = None, start: float = 0.0, end: float | None = None,
               max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Read frames in [start, end) as uint8 (T,H,W,3), plus their fps (the argument, or the native fps).

    Example: `video, fps = read_video("clip.webm", fps=8, start=1.5, max_frames=17)`
    """
    chunks = list(iter_video(path, fps=fps, start=start, end=end, max_frames=max_frames))
    if not chunks:
        raise ValueError(f"no frames in [{start}, {end}) of {path}: choose a start before the video's end")
    return np.concatenate(chunks), float(fps) if fps is not None else probe(path).fps


# --------------------------------------------------------------------------------------------- resizing
def resize_and_crop(frames: np.ndarray, size: tuple[int, int], crop: str = "center",
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Resize uint8 (T,H,W,3) frames to cover size=(H, W) keeping the aspect ratio, then crop center/random."""
    if crop not in ("center", "random"):
        raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T,H,W,3), got shape {tuple(frames.shape)}")
    height, width = size
    in_height, in_width = frames.shape[1:3]
    if (in_height, in_width) == (height, width):
        return frames
    scale = max(height / in_height, width / in_width)
    new_height = max(height, round(in_height * scale))
    new_width = max(width, round(in_width * scale))
    if (new_height, new_width) != (in_height, in_width):
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T,3,H,W)
        video = F.interpolate(video, size=(new_height, new_width), mode="bilinear", antialias=True,
                              align_corners=False)
        frames = video.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (T,H,W,3)
    if crop == "center":
        top, left = (new_height - height) // 2, (new_width - width) // 2
    else:
        rng = rng if rng is not None else np.random.default_rng()
        top, left = int(rng.integers(new_height - height + 1)), int(rng.integers(new_width - width + 1))
    return np.ascontiguousarray(frames[:, top:top + height, left:left + width])


# --------------------------------------------------------------------------------------------- writing
class VideoWriter:
    """Stream uint8 frames to .mp4 (H.264), .webm (VP9), .gif, one .png/.jpg image, or a folder of PNG frames
    (a path without suffix, or ending in '/').

    The output appears at `path` only when the writer closes without error (temp sibling + rename). An existing
    output is refused (before any work) unless `overwrite`; a folder this program did not write is never replaced
    (tokenizer/outputs.py). quality is the CRF for mp4/webm (lower is better; default 12 for mp4, 20 for webm).
    Example: `with VideoWriter("out.mp4", fps=8) as writer: writer.write(chunk)`
    """

    def __init__(self, path: str | os.PathLike, fps: float, quality: int | None = None,
                 overwrite: bool = False) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.kind = check_output(path, overwrite=overwrite)  # mp4, webm, gif, image or frames
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.overwrite = overwrite
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = temp_sibling(self.path, directory=self.kind == FRAMES,
                                  suffix="" if self.kind == FRAMES else self.path.suffix)
        if self.kind == FRAMES:
            (self._temp / FPS_FILE).write_text(f"{fps}\n")
            (self._temp / FRAME_MARKER).write_text("frames written by t2v: `--overwrite` may replace this folder\n")
        self.frames_written, self._closed = 0, False
        self._container = self._stream = self._graph = None

    # 1. open the encoder lazily, when the first frame gives the size
    def _open(self, height: int, width: int) -> None:
        if self.kind in (FRAMES, IMAGE):
            return
        if self.kind == "mp4" and (height % 2 or width % 2):
            raise ValueError(f"cannot write {self.path}: H.264 mp4 needs an even width and height, got "
                             f"{width}x{height}; use an even size, or write .webm/.gif/PNG frames")
        self._rate = rate = Fraction(self.fps).limit_denominator(1001)
        self._container = av.open(str(self._temp), "w", format=self.kind)
        codec = {"mp4": "libx264", "webm": "libvpx-vp9", "gif": "gif"}[self.kind]
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width, height
        if self.kind == "gif":
            self._stream.pix_fmt = "pal8"
            self._stream.options = {"gifflags": "0"}  # transdiff breaks per-frame palettes
            self._graph = _palette_graph(width, height, rate)
        else:
            crf = self.quality if self.quality is not None else (12 if self.kind == "mp4" else 20)
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = ({"crf": str(crf), "preset": "medium"} if self.kind == "mp4" else
                                    {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4"})

    def write(self, frames: np.ndarray) -> None:
        """Append one uint8 frame (H,W,3) or a chunk (T,H,W,3)."""
        if self._closed:
            raise ValueError(f"cannot write to {self.path}: the writer is closed")
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T,H,W,3) or (H,W,3), got {frames.dtype} {frames.shape}")
        if len(frames) == 0:
            return
        if self.kind == IMAGE and self.frames_written + len(frames) > 1:
            raise ValueError(f"cannot write {self.frames_written + len(frames)} frames to {self.path}: a "
                             f"{self.path.suffix} file holds one image; use a folder path (no suffix) or a video "
                             "suffix (.mp4, .webm, .gif)")
        if self.frames_written == 0:
            self._open(*frames.shape[1:3])
            self._size = frames.shape[1:3]
        if frames.shape[1:3] != self._size:
            raise ValueError(f"frame size {frames.shape[1:3]} differs from the first frame's {self._size}")
        for image in frames:
            if self.kind == FRAMES:
                iio.imwrite(self._temp / f"frame_{self.frames_written:05d}.png", image)
            elif self.kind == IMAGE:
                iio.imwrite(self._temp, image, extension=self.path.suffix.lower())
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = self.frames_written
                frame.time_base = 1 / self._rate
                self._encode(frame)
            self.frames_written += 1

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode one frame (None flushes), through the palette graph for GIF."""
        frames = [frame]
        if self._graph is not None:
            self._graph[1].push(frame)
            frames = _drain(self._graph[2]) + ([None] if frame is None else [])
        for item in frames:
            for packet in self._stream.encode(item):
                self._container.mux(packet)

    def close(self) -> None:
        """Finish the file and move it into place (atomic rename)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written == 0:
                raise ValueError(f"cannot write {self.path}: no frames were written")
            if self._container is not None:
                self._encode(None)
                self._container.close()
            place_output(self._temp, self.path, self.kind, self.overwrite)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial output: nothing appears at `path`."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the output is discarded anyway
                pass
        remove(self._temp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()


def _palette_graph(width: int, height: int, rate: Fraction):
    """An ffmpeg filter graph giving each frame its own 256-colour palette (for GIF)."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / rate)
    split = graph.add("split")
    palette = graph.add("palettegen", "stats_mode=single:reserve_transparent=0")
    use = graph.add("paletteuse", "new=1:dither=none")
    sink = graph.add("buffersink")
    source.link_to(split)
    split.link_to(use, 0, 0)
    split.link_to(palette, 1, 0)
    palette.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph, source, sink  # the graph must stay referenced while its filters are used


def _drain(sink) -> list[av.VideoFrame]:
    frames = []
    while True:
        try:
            frames.append(sink.pull())
        except (av.error.BlockingIOError, av.error.EOFError):  # needs more input / finished
            return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, **kwargs) -> Path:
    """Write uint8 (T,H,W,3) frames to `path` (format by suffix; `overwrite=True` to replace an output, see
    VideoWriter); returns the path."""
    with VideoWriter(path, fps, **kwargs) as writer:
        writer.write(frames)
    return writer.path


def frame_picks(frames: int, max_columns: int = 9) -> np.ndarray:
    """Indices of up to `max_columns` frames spread evenly over `frames` (first and last included)."""
    return np.unique(np.linspace(0, frames - 1, min(frames, max_columns)).round().astype(int))


def contact_sheet(videos: np.ndarray, max_columns: int = 9, gap: int = 2) -> np.ndarray:
    """uint8 (N, T, H, W, 3) videos → one image: a row per video, up to `max_columns` frames spread over its length."""
    count, frames, height, width, _ = videos.shape
    picks = frame_picks(frames, max_columns)
    sheet = np.zeros((count * (height + gap) - gap, len(picks) * (width + gap) - gap, 3), dtype=np.uint8)
    for row in range(count):
        for column, frame in enumerate(picks):
            top, left = row * (height + gap), column * (width + gap)
            sheet[top: top + height, left: left + width] = videos[row, frame]
    return sheet


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write a uint8 (H, W, 3) image to a .png/.jpg `path` atomically (an existing file only with `overwrite`)."""
    if check_output(path, overwrite=overwrite) != IMAGE:
        raise ValueError(f"cannot write an image to {path}: use a .png or .jpg path")
    return write_video(path, image, fps=1.0, overwrite=overwrite)
