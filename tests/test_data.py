"""tokenizer/data.py: index reading, ClipDataset clips and bad-file skipping, check_index."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from t2v.tokenizer.data import ClipDataset, SkipClip, check_index, load_clip, read_index
from t2v.tokenizer.video_io import read_video, write_video

STEP = 4


def counting_frames(num: int, height: int = 24, width: int = 40) -> np.ndarray:
    """Frames whose brightness STEP·i encodes their index i."""
    return np.broadcast_to((np.arange(num, dtype=np.uint8) * STEP)[:, None, None, None],
                           (num, height, width, 3)).copy()


def write_index(directory, rows: list[dict]):
    path = directory / "index.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def data_index_with_bad_files(tmp_path):
    """An index with 2 good clips (40 frames), a corrupt, a missing, a truncated and a too-short file."""
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "good0.mp4", counting_frames(40), fps=8)
    write_video(tmp_path / "v" / "good1.webm", counting_frames(40), fps=8)
    write_video(tmp_path / "v" / "short.mp4", counting_frames(5), fps=8)
    whole = write_video(tmp_path / "v" / "whole.webm", counting_frames(40), fps=8).read_bytes()
    (tmp_path / "v" / "truncated.webm").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "v" / "corrupt.mp4").write_bytes(b"not a video at all" * 50)
    names = ["good0.mp4", "good1.webm", "corrupt.mp4", "missing.mp4", "truncated.webm", "short.mp4"]
    return write_index(tmp_path, [{"path": f"v/{name}", "caption": name, "split": "seen"} for name in names])


def test_read_index_resolves_paths_and_reports_bad_lines(tmp_path):
    index = write_index(tmp_path, [{"path": "a.mp4", "caption": "x", "start": 1.5}])
    rows = read_index(index)
    assert rows == [{"path": str(tmp_path / "a.mp4"), "caption": "x", "start": 1.5}]
    index.write_text('{"path": "a.mp4", "caption": "x"}\n{"path": "b.mp4", \n')
    with pytest.raises(ValueError, match=r"index.jsonl:2: not valid JSON"):
        read_index(index)
    index.write_text('{"path": "a.mp4"}\n')
    with pytest.raises(ValueError, match=r":1: .*caption"):
        read_index(index)
    with pytest.raises(FileNotFoundError, match="index not found"):
        read_index(tmp_path / "none.jsonl")


def test_clip_dataset_items(tmp_path):
    write_video(tmp_path / "a.mp4", counting_frames(40), fps=8)
    index = write_index(tmp_path, [{"path": "a.mp4", "caption": "grey", "split": "seen"},
                                   {"path": "a.mp4", "caption": "late", "start": 3.0, "split": "heldout"}])
    dataset = ClipDataset(index, num_frames=9, size=(16, 16))
    assert len(dataset) == 2
    item = dataset[0]
    assert item["video"].shape == (3, 9, 16, 16) and item["video"].dtype == torch.float32
    assert item["caption"] == "grey" and item["path"] == str(tmp_path / "a.mp4")
    assert -1 <= item["video"].min() and item["video"].max() <= 1
    # consecutive frames: the clip is 9 consecutive source frames
    first = int(round((item["video"][0, 0].mean().item() + 1) * 127.5 / STEP))
    levels = ((item["video"][0].mean(dim=(1, 2)) + 1) * 127.5 / STEP).round().long().tolist()
    assert levels == list(range(first, first + 9)) and 0 <= first <= 40 - 9
    # the row's start is honoured; the split filter keeps that row only
    late = ClipDataset(index, num_frames=9, size=(16, 16), split="heldout")
    assert len(late) == 1
    late_first = ((late[0]["video"][0, 0].mean() + 1) * 127.5 / STEP).round().item()
    assert late_first >= 24


def test_a_duration_rounded_by_the_container_still_gives_the_whole_clip(tmp_path):
    """A 17-frame 16 fps mp4 may state 1.062 s (its time base), not 1.0625 s: all 17 frames still load; a clip
    really a frame short is still refused."""
    path = write_video(tmp_path / "a.mp4", counting_frames(17), fps=16)
    rng = np.random.default_rng(0)
    rounded = load_clip({"path": str(path), "end": 1.062}, num_frames=17, fps=16.0, rng=rng)
    assert rounded.shape[0] == 17 and rounded[-1].mean() == pytest.approx(16 * STEP, abs=2)
    with pytest.raises(SkipClip, match="too short"):
        load_clip({"path": str(path), "end": 1.0}, num_frames=17, fps=16.0, rng=rng)


def test_clip_sampling_is_deterministic_and_varies_by_epoch(tmp_path):
    write_video(tmp_path / "a.mp4", counting_frames(40), fps=8)
    index = write_index(tmp_path, [{"path": "a.mp4", "caption": "x"}] * 4)
    a = ClipDataset(index, num_frames=5, size=(12, 20), fps=4, seed=1)
    b = ClipDataset(index, num_frames=5, size=(12, 20), fps=4, seed=1)
    starts = []
    for epoch in range(4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(4):
            torch.testing.assert_close(a[i]["video"], b[i]["video"])
            starts.append(a[i]["video"][0, 0].mean().item())
    assert len(set(starts)) > 3  # clips start at different places
    levels = ((a[0]["video"][0].mean(dim=(1, 2)) + 1) * 127.5 / STEP).round().long()
    assert (torch.diff(levels) == 2).all()  # 4 fps from an 8 fps file: every other frame


def test_bad_files_are_skipped_counted_and_warned_once(data_index_with_bad_files):
    dataset = ClipDataset(data_index_with_bad_files, num_frames=17, size=(16, 16), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(3):
            dataset.set_epoch(epoch)
            items = [dataset[i] for i in range(len(dataset))]
    assert all(item["video"].shape == (3, 17, 16, 16) for item in items)
    assert {item["caption"] for item in items} <= {"good0.mp4", "good1.webm"}
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in dataset.skipped.items()}
    assert set(reasons) == {"corrupt.mp4", "missing.mp4", "truncated.webm", "short.mp4"}
    assert reasons["missing.mp4"].startswith("missing") and reasons["short.mp4"].startswith("too short")
    assert reasons["corrupt.mp4"].startswith("unreadable") and reasons["truncated.webm"].startswith("unreadable")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4 and all(m.startswith("skipping ") for m in messages)  # once per file


def test_all_bad_index_raises(tmp_path):
    index = write_index(tmp_path, [{"path": "missing.mp4", "caption": "x"}])
    dataset = ClipDataset(index, num_frames=4, size=(8, 8), max_retries=3)
    with pytest.warns(UserWarning, match="skipping"), pytest.raises(ValueError, match="t2v data check"):
        dataset[0]


def test_dataloader_workers(tmp_path):
    write_video(tmp_path / "a.mp4", counting_frames(20), fps=8)
    index = write_index(tmp_path, [{"path": "a.mp4", "caption": "x"}] * 4)
    dataset = ClipDataset(index, num_frames=4, size=(8, 8), crop="center")
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert [tuple(b["video"].shape) for b in batches] == [(2, 3, 4, 8, 8)] * 2
    torch.testing.assert_close(batches[1]["video"][1], dataset[3]["video"])  # same clip in a worker


def test_check_index_reports_what_the_dataset_skips(data_index_with_bad_files):
    report = check_index(data_index_with_bad_files, num_frames=17)
    assert (report.total, report.ok) == (6, 2)
    names = {path.rsplit("/", 1)[-1]: reason for path, reason in report.skipped.items()}
    assert set(names) == {"corrupt.mp4", "missing.mp4", "truncated.webm", "short.mp4"}
    assert names["short.mp4"] == "too short: decoded 5 frames, need 17"
    text = report.format()
    assert text.splitlines()[0] == "2/6 ok, 4 skipped" and "missing.mp4" in text
    # at 16 fps the 5-frame file gives 10 frames: still short of 17; 40 frames give 80
    report = check_index(data_index_with_bad_files, num_frames=60, fps=16)
    assert report.ok == 2
    assert read_video(data_index_with_bad_files.parent / "v" / "good0.mp4", fps=16)[0].shape[0] == 80
