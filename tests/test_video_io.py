"""tokenizer/video_io.py: roundtrips per format, seeking, timestamp fps resampling, corrupt files, atomic writes."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from t2v.tokenizer.video_io import VideoWriter, iter_video, probe, read_video, resize_and_crop, write_video

STEP = 4  # frame i has brightness STEP·i, so a decoded frame tells its index


def counting_frames(num: int, height: int = 32, width: int = 48) -> np.ndarray:
    """uint8 (T,H,W,3) grey frames whose brightness encodes their index."""
    return np.repeat((np.arange(num, dtype=np.uint8) * STEP)[:, None, None, None], height * width * 3
                     ).reshape(num, height, width, 3)


def indices(frames: np.ndarray) -> list[int]:
    """The index encoded in each decoded frame (mean brightness / STEP)."""
    return [int(round(value)) for value in frames.reshape(len(frames), -1).mean(axis=1) / STEP]


@pytest.mark.parametrize("suffix, tolerance", [(".mp4", 2), (".webm", 3), (".gif", 0), ("", 0)])
def test_roundtrip_each_format(tmp_path, suffix, tolerance):
    frames = counting_frames(20)
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=8)
    video, fps = read_video(path)
    assert video.dtype == np.uint8 and video.shape == frames.shape
    assert np.abs(video.astype(int) - frames).max() <= tolerance
    assert fps == pytest.approx(8, rel=0.05)  # gif stores delays in 1/100 s
    info = probe(path)
    assert (info.width, info.height) == (48, 32)
    assert info.duration == pytest.approx(20 / 8, abs=0.05)


def test_seek_start_reads_the_right_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=8) as writer:  # written in chunks; libx264's default GOP, so seeking decodes forward
        for chunk in np.split(counting_frames(60), 6):
            writer.write(chunk)
    video, _ = read_video(path, start=3.3, max_frames=5)
    assert indices(video) == [27, 28, 29, 30, 31]  # first frame at or after 3.3 s is 27/8 = 3.375 s
    video, _ = read_video(path, start=2.0, end=3.0)
    assert indices(video) == list(range(16, 24))


def test_seek_with_frequent_keyframes(tmp_path):
    path = tmp_path / "gop.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=8, options={"g": "5", "crf": "10"})
    stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    for i, image in enumerate(counting_frames(50)):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, 8)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    video, _ = read_video(path, start=4.0, max_frames=3)
    assert indices(video) == [32, 33, 34]


def write_vfr(path, times_ms: list[int]) -> None:
    """A variable-frame-rate mp4: frame i (brightness STEP·i) shown at times_ms[i]."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30, options={"crf": "10"})
    stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    for i, image in enumerate(counting_frames(len(times_ms))):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_fps_resampling_uses_timestamps_on_vfr_file(tmp_path):
    times = [0, 100, 150, 400, 450, 500, 900, 1000, 1300]
    write_vfr(tmp_path / "vfr.mp4", times)
    video, fps = read_video(tmp_path / "vfr.mp4", fps=10, end=1.25)
    assert fps == 10
    # expected: for each target time, the last frame whose time is <= target (computed independently)
    targets = [k * 100 for k in range(13)]
    expected = [max(i for i, t in enumerate(times) if t <= target) for target in targets]
    assert expected == [0, 1, 2, 2, 3, 5, 5, 5, 5, 6, 7, 7, 7]  # not what index × average fps would give
    assert indices(video) == expected
    late, _ = read_video(tmp_path / "vfr.mp4", fps=10, start=0.45, max_frames=3)
    assert indices(late) == [4, 5, 5]  # targets 0.45, 0.55, 0.65


def test_fps_up_and_down_sampling(tmp_path):
    path = write_video(tmp_path / "clip.webm", counting_frames(8), fps=4)
    video, _ = read_video(path, fps=8)
    assert indices(video) == [i // 2 for i in range(16)]
    path = write_video(tmp_path / "fast.mp4", counting_frames(60), fps=24)
    video, _ = read_video(path, fps=8, start=0.5)
    assert indices(video) == list(range(12, 60, 3))


def test_iter_video_chunks_equal_read_video(tmp_path):
    path = write_video(tmp_path / "clip.mp4", counting_frames(30), fps=8)
    chunks = list(iter_video(path, chunk_frames=7, fps=6, start=0.5))
    assert [len(chunk) for chunk in chunks][:-1] == [7] * (len(chunks) - 1) and len(chunks[-1]) <= 7
    whole, _ = read_video(path, fps=6, start=0.5)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_frame_directory_fps_and_images(tmp_path):
    directory = write_video(tmp_path / "frames", counting_frames(6), fps=12)
    assert sorted(p.name for p in directory.iterdir())[:3] == [".t2v-frames", "fps.txt", "frame_00000.png"]
    assert probe(directory).fps == 12
    (directory / "fps.txt").unlink()
    assert probe(directory).fps == 8  # default without fps.txt
    video, fps = read_video(directory, fps=12)  # the argument is the directory's fps
    assert fps == 12 and indices(video) == list(range(6))


def truncated_copy(path, tmp_path, fraction: float = 0.6):
    data = path.read_bytes()
    out = tmp_path / f"truncated{path.suffix}"
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_truncated_file_raises(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", counting_frames(40), fps=8)
    bad = truncated_copy(path, tmp_path)
    with pytest.raises(ValueError, match="cannot read video"):
        read_video(bad)


def test_truncated_faststart_mp4_raises(tmp_path):
    path = tmp_path / "fast.mp4"
    container = av.open(str(path), "w", options={"movflags": "+faststart"})
    stream = container.add_stream("libx264", rate=8)
    stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    for image in counting_frames(40):
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(ValueError, match="cannot read video"):
        read_video(truncated_copy(path, tmp_path))


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    (tmp_path / "empty.webm").write_bytes(b"")
    for name in ("noise.mp4", "empty.webm"):
        with pytest.raises(ValueError, match=f"cannot read video .*{name}"):
            read_video(tmp_path / name)
        with pytest.raises(ValueError):
            probe(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="video not found"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(ValueError, match="no image frames"):
        read_video(tmp_path)  # a directory without frames


def test_resize_and_crop_non_square():
    frames = counting_frames(3, height=40, width=100)
    out = resize_and_crop(frames, (32, 48))
    assert out.shape == (3, 32, 48, 3) and out.dtype == np.uint8
    assert indices(out) == [0, 1, 2]  # flat frames stay flat
    tall = resize_and_crop(frames, (64, 20), crop="random", rng=np.random.default_rng(0))
    assert tall.shape == (3, 64, 20, 3)
    assert resize_and_crop(frames, (40, 100)) is frames  # fast path
    # center crop keeps the middle: a vertical stripe in the middle of a 2:1 image stays centred
    striped = np.zeros((1, 32, 64, 3), np.uint8)
    striped[:, :, 30:34] = 255
    centred = resize_and_crop(striped, (16, 16))
    assert centred[0, 8, 7:9, 0].min() > 200 and centred[0, 8, 0, 0] == 0
    with pytest.raises(ValueError, match="crop"):
        resize_and_crop(frames, (8, 8), crop="corner")


def test_writer_leaves_nothing_when_the_block_raises(tmp_path):
    for name in ("out.mp4", "out.gif", "frames"):
        with pytest.raises(RuntimeError):
            with VideoWriter(tmp_path / name, fps=8) as writer:
                writer.write(counting_frames(4))
                raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", counting_frames(2, height=31, width=48), fps=8)
    with pytest.raises(ValueError, match="unknown suffix '.xyz'; use .mp4"):
        VideoWriter(tmp_path / "out.xyz", fps=8)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "float.webm", counting_frames(2).astype(np.float32), fps=8)
    assert list(tmp_path.iterdir()) == []
