"""tokenizer/index.py: the columnar index equals read_index's rows, is rebuilt when the index changes, is shared by
the datasets of a process; ShardReader's columns and TokenSequences over them; the bounded caption sample."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from t2v.tokenizer.data import ClipDataset
from t2v.tokenizer.index import VideoIndex, open_columns, read_index, write_index, VIDEO_FIELDS, iter_index

ROWS = [
    {"path": "v/a.mp4", "caption": "a red circle", "split": "seen", "fps": 8, "size": [32, 48], "duration": 2.0},
    {"path": "/abs/b.webm", "caption": "ünïcode \u2028 caption", "start": 1, "end": 2.5, "split": "heldout"},
    {"path": "c.mp4", "caption": "", "size": [1, 2, 3], "fps": "fast", "extra": {"nested": [1, None]}},
    {"path": "d.mp4", "caption": "no split", "split": 3, "start": 0.25, "flag": True},
]


def test_columns_equal_read_index_rows(tmp_path):
    index = write_index(ROWS, tmp_path / "index.jsonl")
    columns = VideoIndex(index)
    assert list(columns.rows()) == read_index(index)
    assert [columns.row(i) for i in range(len(ROWS))] == read_index(index)
    assert columns.select("seen").tolist() == [0] and columns.select(None).tolist() == [0, 1, 2, 3]
    assert columns.select("nope").tolist() == []
    sizes, known = columns.sizes(np.arange(4))
    assert known.tolist() == [True, False, False, False] and sizes[0].tolist() == [32, 48]
    assert (tmp_path / ".index.jsonl.columns").is_dir()  # the cache lies beside the index


def test_columns_rebuilt_when_the_index_changes(tmp_path):
    index = write_index(ROWS[:2], tmp_path / "index.jsonl")
    first = open_columns(index, VIDEO_FIELDS, iter_index)
    assert open_columns(index, VIDEO_FIELDS, iter_index) is first  # memoized: one object per process
    write_index(ROWS, index)
    assert len(VideoIndex(index)) == 4 and list(VideoIndex(index).rows()) == read_index(index)
    # same size, another mtime: rebuilt too
    changed = [dict(ROWS[0], caption="a blue circle"), *ROWS[1:]]
    write_index(changed, index)
    os.utime(index, ns=(1, 1))
    assert VideoIndex(index).row(0)["caption"] == "a blue circle"
    assert len(list((tmp_path / ".index.jsonl.columns").iterdir())) == 1  # older versions removed


def test_damaged_index_is_one_error_and_leaves_no_columns(tmp_path):
    index = tmp_path / "index.jsonl"
    index.write_text(json.dumps(ROWS[0]) + "\n{\"path\": \n")
    with pytest.raises(ValueError, match=r"index.jsonl:2: not valid JSON"):
        VideoIndex(index)
    assert not any(p.name[0].isdigit() for p in (tmp_path / ".index.jsonl.columns").iterdir())


def test_read_only_folder_caches_under_the_user_cache(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    index = write_index(ROWS, folder / "index.jsonl")
    folder.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        assert list(VideoIndex(index).rows()) == read_index(index)
    finally:
        folder.chmod(0o755)
    assert any((tmp_path / "cache" / "t2v" / "columns").iterdir())


def test_trainer_datasets_share_the_index(shapes_index):
    train = ClipDataset(shapes_index, num_frames=5, size=(16, 16), split="seen")
    image = ClipDataset(shapes_index, num_frames=1, size=(16, 16), split="seen")
    held = ClipDataset(shapes_index, num_frames=5, size=(16, 16), split="heldout", crop="center")
    assert train.index.columns is image.index.columns is held.index.columns
    assert train.ids is image.ids  # one split array per process
    rows = read_index(shapes_index)
    assert list(train.rows) == [row for row in rows if row["split"] == "seen"]
    assert len(train) + len(held) == len(rows) and train[0]["video"].shape == (3, 5, 16, 16)


def small_shards(directory, clips: int = 30):
    from t2v.tokenizer.shards import ShardWriter

    writer = ShardWriter(directory, 64, max_tokens_per_shard=40)
    rng = np.random.default_rng(0)
    for i in range(clips):
        writer.add(rng.integers(0, 64, (1 + i % 3, 2, 2 + i % 2)),
                   {"caption": f"caption {i}", "split": "seen" if i % 3 else "heldout", "fps": 8.0 * (1 + i % 2)})
    return writer.close({})


def test_shard_reader_columns_equal_the_index_lines(tmp_path):
    from t2v.tokenizer.shards import ShardReader

    reader = ShardReader.open(small_shards(tmp_path / "tokens"))
    lines = [json.loads(line) for line in (tmp_path / "tokens" / "index.jsonl").read_text().splitlines()]
    assert list(reader.rows) == lines and len(reader.meta["shards"]) > 1
    assert reader.select("heldout").tolist() == [i for i in range(30) if i % 3 == 0]
    assert reader.shapes().tolist() == [line["shape"] for line in lines]
    assert reader.rates().tolist() == [line["fps"] for line in lines] and reader.caption(4) == "caption 4"
    assert reader.codes(5).shape == tuple(lines[5]["shape"])


def test_train_captions_is_a_bounded_deterministic_sample(tmp_path):
    from t2v.generator.train import train_captions, trained_tables
    from t2v.tokenizer.shards import ShardReader

    reader = ShardReader.open(small_shards(tmp_path / "tokens"))
    assert train_captions(reader, "seen") == [f"caption {i}" for i in range(30) if i % 3]
    sample = train_captions(reader, None, limit=7)
    assert len(sample) == 7 and sample == train_captions(reader, None, limit=7)
    assert sample == sorted(sample, key=lambda caption: int(caption.split()[1]))  # clip order
    assert trained_tables(reader, "seen") == ([[2, 2], [2, 3]], [8.0, 16.0])
