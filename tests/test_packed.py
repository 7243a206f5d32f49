"""tokenizer/packed.py and `t2v data pack`: clips in tar shards read as an index (ClipDataset, the trainer's data
config) and as a stream split over ranks × DataLoader workers (each clip once; corrupt samples skipped and
counted)."""
from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch

from conftest import run_main
from t2v.tokenizer.config import DataConfig
from t2v.tokenizer.data import ClipDataset, StreamingClips, check_index, collate_clips
from t2v.tokenizer.index import read_index
from t2v.tokenizer.packed import PACKED_FILE, iter_samples, pack, reader_shares


@pytest.fixture(scope="module")
def packed(shapes_index, tmp_path_factory):
    """The 24-clip shapes index packed into shards of about 3 clips."""
    return pack(shapes_index, tmp_path_factory.mktemp("packed") / "packed", max_shard_bytes=12_000).out_dir


def test_pack_writes_webdataset_shards_and_an_index_of_members(packed, shapes_index):
    info = json.loads((packed / PACKED_FILE).read_text())
    rows, packed_rows = read_index(shapes_index), read_index(packed / "index.jsonl")
    assert info["clips"] == 24 and len(info["shards"]) >= 5 and len(packed_rows) == 24
    assert [row["caption"] for row in packed_rows] == [row["caption"] for row in rows]
    first = next(iter_samples(packed / info["shards"][0]))
    assert first.key == "000000000" and set(first.members) == {"mp4", "json"} and first.error is None
    assert json.loads(first.members["json"])["source"] == rows[0]["path"]
    with open(rows[0]["path"], "rb") as file:
        assert first.members["mp4"] == file.read()
    with open(packed_rows[0]["path"], "rb") as file:  # the index's offset and length locate the member's bytes
        file.seek(packed_rows[0]["offset"])
        assert file.read(packed_rows[0]["length"]) == first.members["mp4"]
    webdataset = pytest.importorskip("webdataset")  # the field's reader takes the shards as they are
    samples = list(webdataset.WebDataset(str(packed / info["shards"][0]), shardshuffle=False))
    assert samples[0]["__key__"] == "000000000" and samples[0]["mp4"] == first.members["mp4"]


def test_a_packed_directory_reads_like_its_index(packed, shapes_index):
    files = ClipDataset(shapes_index, num_frames=5, size=(16, 16), split="seen", crop="center")
    tars = ClipDataset(packed, num_frames=5, size=(16, 16), split="seen", crop="center")
    assert len(files) == len(tars)
    for i in (0, 3):
        assert torch.equal(files[i]["video"], tars[i]["video"]) and files[i]["caption"] == tars[i]["caption"]
    assert check_index(packed / "index.jsonl", num_frames=9).ok == 24
    config = DataConfig(shards=str(packed))  # the trainer's ClipDataset reads data.index
    assert config.index == str(packed / "index.jsonl")
    with pytest.raises(ValueError, match="two sources"):
        DataConfig(shards=str(packed), drawn="a:b")


@pytest.mark.parametrize("shards", [6, 2])  # more shards than readers (whole shards), fewer (every n-th sample)
def test_reader_shares_cover_every_sample_once(shards):
    readers, samples = 4, 5
    read = [(shard, k) for reader in range(readers) for shard, modulus, remainder in
            reader_shares(shards, reader, readers) for k in range(samples) if k % modulus == remainder]
    assert sorted(read) == [(shard, k) for shard in range(shards) for k in range(samples)]


def stream(directory, rank: int, world: int, workers: int) -> list[dict]:
    clips = StreamingClips(directory, num_frames=5, size=(16, 16), rank=rank, world=world)
    return list(torch.utils.data.DataLoader(clips, batch_size=None, num_workers=workers))


def test_stream_over_two_ranks_and_two_workers_reads_each_clip_once(packed):
    items = stream(packed, 0, 2, 2) + stream(packed, 1, 2, 2)
    keys = sorted(item["path"].rsplit(":", 1)[1] for item in items)
    assert keys == [f"{i:09d}" for i in range(24)]
    assert items[0]["video"].shape == (3, 5, 16, 16) and all(not item["skipped"] for item in items)
    batch = collate_clips(items[:3])
    assert batch["video"].shape == (3, 3, 5, 16, 16) and len(batch["caption"]) == 3


def test_corrupt_members_are_skipped_and_counted(packed, tmp_path):
    """A copy of the packed directory whose first shard has a damaged json member and an undecodable video."""
    info = json.loads((packed / PACKED_FILE).read_text())
    copy = tmp_path / "packed"
    copy.mkdir()
    for name in info["shards"][1:] + [PACKED_FILE]:
        (copy / name).write_bytes((packed / name).read_bytes())
    samples = list(iter_samples(packed / info["shards"][0]))
    with tarfile.open(copy / info["shards"][0], "w") as tar:
        for number, sample in enumerate(samples):
            for suffix, data in sample.members.items():
                if number == 0 and suffix == "json":
                    data = b"{not json"
                if number == 1 and suffix == "mp4":
                    data = b"not a video" * 20
                member = tarfile.TarInfo(f"{sample.key}.{suffix}")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    items = stream(copy, 0, 1, 2)
    skipped: dict[str, str] = {}
    for item in items:
        skipped.update(item["skipped"])
    assert len(items) == 22 and len(skipped) == 2
    assert any("damaged json" in reason for reason in skipped.values())
    assert any("cannot read video" in reason or "unreadable" in reason for reason in skipped.values())


def test_cli_pack_and_its_errors(shapes_index, monkeypatch, capsys, tmp_path):
    out = tmp_path / "packed"
    code, stdout, err = run_main(["data", "pack", str(shapes_index), str(out), "--split", "seen"], monkeypatch, capsys)
    assert code == 0 and "packed" in stdout and (out / PACKED_FILE).is_file(), err
    assert {row["split"] for row in read_index(out / "index.jsonl")} == {"seen"}
    code, _, err = run_main(["data", "pack", str(shapes_index), str(out)], monkeypatch, capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, _, err = run_main(["data", "pack", str(tmp_path / "none.jsonl"), str(tmp_path / "p2")], monkeypatch, capsys)
    assert code == 2 and "index not found" in err and not (tmp_path / "p2").exists()


def test_encode_reads_a_packed_directory_as_its_index(packed, shapes_index, tmp_path):
    from conftest import tiny_model
    from t2v.tokenizer.encode import encode_dataset
    from t2v.tokenizer.shards import ShardReader

    model = tiny_model()
    files = ShardReader.open(encode_dataset(model, shapes_index, tmp_path / "a", size=(32, 32), split="seen").out_dir)
    tars = ShardReader.open(encode_dataset(model, packed, tmp_path / "b", size=(32, 32), split="seen").out_dir)
    assert len(files) == len(tars) and [r["caption"] for r in files.rows] == [r["caption"] for r in tars.rows]
    assert all((files.codes(i) == tars.codes(i)).all() for i in range(len(files)))
