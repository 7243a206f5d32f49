"""tokenizer/outputs.py and VideoWriter: output kinds by suffix, and what an output may (never) replace."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from t2v.tokenizer.outputs import FRAME_MARKER, check_output, is_frame_folder, output_kind
from t2v.tokenizer.video_io import VideoWriter, read_video, write_image, write_video

FRAMES = np.full((3, 16, 16, 3), 60, np.uint8)


def snapshot(root) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes), to show that nothing changed."""
    return {os.path.relpath(os.path.join(top, name), root): open(os.path.join(top, name), "rb").read()
            for top, _, names in os.walk(root) for name in names}


def user_folder(path):
    """A folder of the user's own files, one of them a nested folder."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("keep me")
    (path / "sub" / "photo.png").write_bytes(b"\x89PNG not really")
    return path


@pytest.mark.parametrize("path, kind", [("a.mp4", "mp4"), ("a.WEBM", "webm"), ("x/a.gif", "gif"), ("a.png", "image"),
                                        ("a.jpg", "image"), ("a.jpeg", "image"), ("frames", "frames"),
                                        ("frames/", "frames"), ("frames.v2/", "frames"), (".hidden", "frames")])
def test_kind_by_suffix(path, kind):
    assert output_kind(path) == kind


@pytest.mark.parametrize("path, message", [
    (".", "cannot write to '.': it names no file or folder"), ("./", "names no file or folder"),
    ("..", "names no file or folder"), ("", "names no file or folder"),
    ("out.mp4/", "the trailing '/' names a folder of frames but .mp4 a file"),
    ("x.png/", "drop the '/' for a .png file"),
    ("out.avi", "unknown suffix '.avi'; use .mp4, .webm or .gif (a video), .png or .jpg (one image)"),
])
def test_bad_paths_are_refused(path, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        output_kind(path)


def test_a_user_folder_is_never_replaced_even_with_overwrite(tmp_path):
    folder = user_folder(tmp_path / "Videos")
    before = snapshot(folder)
    for path in (folder, f"{folder}/", str(folder) + os.sep):
        for overwrite in (False, True):
            with pytest.raises(FileExistsError, match="is a folder t2v did not write .*'notes.txt' and 1 more.*never"):
                write_video(path, FRAMES, fps=8, overwrite=overwrite)
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Videos"]  # no temporary left beside it


def test_a_file_output_never_replaces_a_folder(tmp_path):
    (tmp_path / "clip.mp4").mkdir()
    (tmp_path / "clip.mp4" / "inside.txt").write_text("x")
    (tmp_path / "empty.gif").mkdir()
    for name in ("clip.mp4", "empty.gif"):
        with pytest.raises(IsADirectoryError, match="is a folder: a .* output never replaces a folder"):
            write_video(tmp_path / name, FRAMES, fps=8, overwrite=True)
    assert (tmp_path / "clip.mp4" / "inside.txt").read_text() == "x" and (tmp_path / "empty.gif").is_dir()


def test_a_frame_folder_never_replaces_a_file(tmp_path):
    (tmp_path / "frames").write_bytes(b"mine")
    with pytest.raises(NotADirectoryError, match="is a file: a folder of frames never replaces a file"):
        write_video(tmp_path / "frames", FRAMES, fps=8, overwrite=True)
    assert (tmp_path / "frames").read_bytes() == b"mine"


def test_an_existing_file_needs_overwrite(tmp_path):
    path = write_video(tmp_path / "clip.gif", FRAMES, fps=8)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="clip.gif already exists: choose another path, or pass --overwrite"):
        VideoWriter(path, fps=8)
    assert path.read_bytes() == before
    write_video(path, np.zeros((5, 16, 16, 3), np.uint8), fps=8, overwrite=True)
    assert read_video(path)[0].shape[0] == 5


def test_frame_folders_new_empty_or_ours(tmp_path):
    (tmp_path / "empty").mkdir()
    write_video(tmp_path / "empty", FRAMES, fps=8)  # an empty folder is as good as a new one
    assert is_frame_folder(tmp_path / "empty") and (tmp_path / "empty" / FRAME_MARKER).is_file()
    with pytest.raises(FileExistsError, match="holds frames t2v wrote earlier: .* --overwrite"):
        write_video(tmp_path / "empty", FRAMES[:1], fps=8)
    write_video(f"{tmp_path / 'empty'}/", FRAMES[:2], fps=8, overwrite=True)
    assert read_video(tmp_path / "empty")[0].shape[0] == 2  # replaced whole: no stale third frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # the older copy set aside is gone
    # a frame folder of ours with a file of the user's added is no longer ours
    (tmp_path / "empty" / "note.txt").write_text("mine")
    assert not is_frame_folder(tmp_path / "empty")
    with pytest.raises(FileExistsError, match="did not write"):
        write_video(tmp_path / "empty", FRAMES, fps=8, overwrite=True)
    # frame_*.png and fps.txt without our marker (e.g. extracted with ffmpeg) are the user's
    (tmp_path / "extracted").mkdir()
    (tmp_path / "extracted" / "fps.txt").write_text("8\n")
    (tmp_path / "extracted" / "frame_00000.png").write_bytes(b"png")
    with pytest.raises(FileExistsError, match="did not write"):
        write_video(tmp_path / "extracted", FRAMES, fps=8, overwrite=True)


def test_the_rule_is_checked_again_before_the_rename(tmp_path):
    path = tmp_path / "late.mp4"
    with pytest.raises(FileExistsError, match="already exists"):
        with VideoWriter(path, fps=8) as writer:
            writer.write(FRAMES[:2])
            path.write_bytes(b"appeared meanwhile")
    assert path.read_bytes() == b"appeared meanwhile" and sorted(p.name for p in tmp_path.iterdir()) == ["late.mp4"]


def test_one_image_outputs(tmp_path):
    path = write_video(tmp_path / "still.png", FRAMES[:1], fps=8)
    assert path.is_file() and read_video(path)[0].shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="cannot write 3 frames to .*still.jpg: a .jpg file holds one image; use a "
                                         "folder path"):
        check_output(tmp_path / "still.jpg", frames=3)
    with pytest.raises(ValueError, match="cannot write 2 frames .* holds one image"):
        with VideoWriter(tmp_path / "two.png", fps=8) as writer:
            writer.write(FRAMES[:1])
            writer.write(FRAMES[:1])
    assert not (tmp_path / "two.png").exists()
    write_image(tmp_path / "sheet.jpg", FRAMES[0])
    with pytest.raises(FileExistsError):
        write_image(tmp_path / "sheet.jpg", FRAMES[0])
    write_image(tmp_path / "sheet.jpg", FRAMES[0], overwrite=True)
    with pytest.raises(ValueError, match="use a .png or .jpg path"):
        write_image(tmp_path / "sheet.mp4", FRAMES[0])


def test_a_file_where_a_parent_folder_should_be(tmp_path):
    (tmp_path / "a").write_text("x")
    with pytest.raises(NotADirectoryError, match="a is a file, not a folder"):
        check_output(tmp_path / "a" / "b" / "clip.mp4")
