"""`t2v tokenizer` commands end to end on tiny data: train (dry run, overrides, errors), reconstruct, encode."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import run_main
from t2v.recipes.shapes.dataset import make_dataset
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.config import QuantizerConfig, preset
from t2v.tokenizer.shards import ShardReader
from t2v.tokenizer.frames import to_pixels, tokenizer_chunks
from t2v.tokenizer.video_io import read_video, write_video

TINY = dict(channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=QuantizerConfig(fsq_levels=(5, 5, 5)),
            chunk_latent_frames=1)


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    torch.manual_seed(0)
    return VideoTokenizer(preset("tiny", **TINY)).save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes") / "data"
    make_dataset(root, num=6, frames=9, size=(32, 32), seed=0)
    return root / "index.jsonl"



def test_train_dry_run_prints_resolved_config_with_overrides(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_main(["tokenizer", "train", "shapes", "--dry-run", "--set", "steps=7", "--set", "image_steps=2",
                             "--set", "decoder_steps=1", "--set", "model.quantizer.fsq_levels=[5,5,5]"],
                            monkeypatch, capsys)
    assert code == 0
    assert "steps: 7" in out and "decoder_steps: 1" in out and "- 5\n    - 5\n    - 5" in out
    assert "runs/shapes-tokenizer-00001" in out
    assert not (tmp_path / "runs" / "shapes-tokenizer-00001").exists()  # a dry run creates nothing


@pytest.mark.parametrize("args, message", [
    (["tokenizer", "train", "nope"], "unknown recipe 'nope'"),
    (["tokenizer", "train", "shapes", "--set", "steps=abc"], "expected a number"),
    (["tokenizer", "train", "shapes", "--set", "model.preset=XL"], "unknown config key"),
    (["tokenizer", "train", "shapes", "--set", "data.drawn=", "--set", "data.index=missing.jsonl"],
     "training index not found"),
    (["tokenizer", "train", "shapes", "--set", "data.drawn=t2v.recipes.shapes.dataset:nope"], "cannot be loaded"),
])
def test_train_bad_input_is_one_line_error_and_writes_nothing(args, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert message in err and err.strip().count("\n") == 0 and err.startswith("Error: ")
    assert not (tmp_path / "runs").exists()


def test_reconstruct_any_length_streams_and_reports(tiny_tokenizer, monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (22, 24, 32, 3), dtype=np.uint8)  # 22 frames: not 1 + 4k, padded internally
    source = write_video(tmp_path / "in.mp4", frames, fps=10)
    code, out, _ = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(source),
                             str(tmp_path / "out.mp4")], monkeypatch, capsys)
    assert code == 0 and "22 frames at 32x24" in out and "PSNR" in out
    written, fps = read_video(tmp_path / "out.mp4")
    pair, _ = read_video(tmp_path / "out_side_by_side.mp4")
    assert written.shape == (22, 24, 32, 3) and pair.shape == (22, 24, 64, 3) and abs(fps - 10) < 0.01
    # The streamed result equals a whole-clip encode/decode of the same (decoded) input frames (PNG: lossless).
    code, _, _ = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(source), str(tmp_path / "png"),
                           "--no-side-by-side"], monkeypatch, capsys)
    assert code == 0
    model = VideoTokenizer.from_pretrained(tiny_tokenizer)
    decoded, _ = read_video(source)
    padded = np.concatenate([decoded, np.repeat(decoded[-1:], 3, axis=0)])  # 25 = 1 + 4·6
    with torch.no_grad():
        whole = model.decode(model.encode(to_pixels(padded)))[:, :, :22]
    expected = ((whole.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 3, 0).numpy()
    assert np.abs(expected - read_video(tmp_path / "png")[0].astype(float)).max() <= 1


def test_reconstruct_pads_a_size_the_stride_does_not_divide_and_refuses_a_missing_file(tiny_tokenizer, monkeypatch,
                                                                                       capsys, tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (5, 20, 30, 3), dtype=np.uint8)
    source = write_video(tmp_path / "in.png", frames[:1], fps=8)  # lossless: the expected output is exact
    code, out, _ = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(source), str(tmp_path / "o.png"),
                             "--no-side-by-side"], monkeypatch, capsys)
    assert code == 0 and "1 frames at 30x20" in out
    model = VideoTokenizer.from_pretrained(tiny_tokenizer)
    padded = np.pad(frames[:1], ((0, 0), (0, 4), (0, 2), (0, 0)), mode="edge")  # to 32x24, the stride's multiple
    with torch.no_grad():
        whole = model.decode(model.encode(to_pixels(padded)))[0, :, :, :20, :30]
    expected = ((whole.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).numpy()
    assert np.abs(expected - read_video(tmp_path / "o.png")[0].astype(float)).max() <= 1
    code, _, err = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(tmp_path / "none.mp4"),
                             str(tmp_path / "o.mp4")], monkeypatch, capsys)
    assert code == 2 and "video not found" in err
    code, _, err = run_main(["tokenizer", "reconstruct", str(tmp_path / "no_tokenizer"), str(source),
                             str(tmp_path / "o.mp4")], monkeypatch, capsys)
    assert code == 2 and "tokenizer directory not found" in err
    assert not (tmp_path / "o.mp4").exists()


def test_reconstruct_checks_both_outputs_before_loading(tiny_tokenizer, monkeypatch, capsys, tmp_path):
    source = write_video(tmp_path / "in.mp4", np.full((5, 16, 24, 3), 90, np.uint8), fps=8)
    (tmp_path / "Videos").mkdir()
    (tmp_path / "Videos" / "mine.mp4").write_bytes(b"precious")
    (tmp_path / "rec.mp4").write_bytes(b"older")
    (tmp_path / "b_side_by_side.mp4").write_bytes(b"older pair")
    before = {path.name: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    cases = [
        ([str(tmp_path / "rec.mp4"), "--no-side-by-side"], "rec.mp4 already exists: choose another path, or pass "
                                                           "--overwrite"),
        ([str(tmp_path / "b.mp4")], "b_side_by_side.mp4 already exists"),  # b.mp4 itself is free: nothing written
        ([f"{tmp_path / 'Videos'}/", "--overwrite"], "is a folder t2v did not write"),
        ([f"{tmp_path / 'rec.mp4'}/"], "the trailing '/' names a folder of frames but .mp4 a file"),
        ([str(tmp_path / "rec.mov")], "unknown suffix '.mov'"),
        ([str(tmp_path / "rec.png")], "cannot write 5 frames to"),
        ([str(tmp_path / "c.mp4"), "--side-by-side", str(tmp_path / "c.mp4")], "is OUT_VIDEO itself"),
    ]
    for outputs, message in cases:  # a missing tokenizer is not reached: the outputs are checked first
        code, _, err = run_main(["tokenizer", "reconstruct", str(tmp_path / "no_tokenizer"), str(source), *outputs],
                                monkeypatch, capsys)
        assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1 and message in err, err
    assert {path.name: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    code, out, err = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(source), str(tmp_path / "rec.mp4"),
                               "--side-by-side", str(tmp_path / "b_side_by_side.mp4"), "--overwrite"], monkeypatch,
                              capsys)
    assert code == 0, err
    assert read_video(tmp_path / "rec.mp4")[0].shape == (5, 16, 24, 3)
    assert read_video(tmp_path / "b_side_by_side.mp4")[0].shape == (5, 16, 48, 3)
    code, _, err = run_main(["tokenizer", "reconstruct", str(tiny_tokenizer), str(source), str(tmp_path / "one.png"),
                             "--frames", "1"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "one.png")[0].shape == (1, 16, 24, 3) and (tmp_path / "one_side_by_side.png").is_file()
    assert (tmp_path / "Videos" / "mine.mp4").read_bytes() == b"precious"


def test_encode_writes_shards_matching_direct_encode(tiny_tokenizer, tiny_shapes, monkeypatch, capsys, tmp_path):
    out_dir = tmp_path / "tokens"
    code, out, _ = run_main(["tokenizer", "encode", str(tiny_tokenizer), str(tiny_shapes), str(out_dir)],
                            monkeypatch, capsys)
    assert code == 0 and "encoded 6 clips" in out
    reader = ShardReader.open(out_dir)
    assert reader.meta["num_clips"] == 6 and reader.meta["latent_grid"] == [4, 4]
    assert reader.meta["num_tokens"] == 6 * 3 * 4 * 4 and reader.meta["dtype"] == "<u2"
    captions = [json.loads(line)["caption"] for line in tiny_shapes.read_text().splitlines()]
    assert [row["caption"] for row in reader.rows] == captions
    model = VideoTokenizer.from_pretrained(tiny_tokenizer)
    frames, _ = read_video(reader.rows[3]["path"])
    with torch.no_grad():
        direct = model.encode(to_pixels(frames))[0].numpy()
    assert reader.codes(3).shape == (3, 4, 4) and np.array_equal(reader.codes(3), direct)
    assert reader.fsq_levels() == [5, 5, 5]  # meta.json records the tokenizer's quantizer section
    flat = {"quantizer": "fsq", "fsq_levels": [8, 5]}  # the layout before the section: still read
    assert dataclasses.replace(reader, meta={**reader.meta, "tokenizer": flat}).fsq_levels() == [8, 5]
    assert dataclasses.replace(reader, meta={**reader.meta, "tokenizer": {"quantizer": {"kind": "vq"}}}).fsq_levels() \
        is None
    # A second encode into the same directory refuses instead of overwriting.
    code, _, err = run_main(["tokenizer", "encode", str(tiny_tokenizer), str(tiny_shapes), str(out_dir)],
                            monkeypatch, capsys)
    assert code == 2 and "already exists" in err


def test_encode_skips_and_counts_corrupt_files(tiny_tokenizer, tiny_shapes, tmp_path):
    from t2v.tokenizer.encode import encode_dataset

    rows = [json.loads(line) for line in tiny_shapes.read_text().splitlines()]
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    rows[0]["path"] = str(tmp_path / "broken.mp4")
    rows[1]["path"] = str(tmp_path / "missing.mp4")
    for row in rows[2:]:
        row["path"] = str(tiny_shapes.parent / row["path"])
    index = tmp_path / "index.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.warns(UserWarning, match="skipping"):
        report = encode_dataset(VideoTokenizer.from_pretrained(tiny_tokenizer), index, tmp_path / "tokens",
                                size=(32, 32))
    assert report.clips == 4 and set(report.skipped) == {rows[0]["path"], rows[1]["path"]}
    assert ShardReader.open(tmp_path / "tokens").meta["skipped"] == 2


def test_tokenizer_chunks_regroup_and_pad_only_the_end():
    frames = np.arange(23)[:, None, None, None].repeat(3, axis=3).astype(np.uint8)
    chunks = list(tokenizer_chunks(np.array_split(frames, 5), temporal_stride=4, chunk_latent_frames=2))
    assert [len(c) for c, _ in chunks] == [9, 8, 8] and [r for _, r in chunks] == [9, 8, 6]
    joined = np.concatenate([c for c, _ in chunks])[:, 0, 0, 0]
    assert list(joined[:23]) == list(range(23)) and list(joined[23:]) == [22, 22]


def test_encode_with_no_readable_file_fails_cleanly(tiny_tokenizer, tmp_path):
    from t2v.tokenizer.encode import encode_dataset

    index = tmp_path / "index.jsonl"
    index.write_text(json.dumps({"path": "missing.mp4", "caption": "a red circle moving left slowly"}) + "\n")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 files .* could be read"):
        encode_dataset(VideoTokenizer.from_pretrained(tiny_tokenizer), index, tmp_path / "tokens", size=(32, 32))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("tokens")]  # no partial shard directory


def test_encode_batches_short_clips_with_the_codes_and_order_of_streaming(tiny_tokenizer, tmp_path):
    from t2v.tokenizer.encode import encode_chunks, encode_dataset
    from t2v.tokenizer.frames import read_tokenizer_chunks

    rng = np.random.default_rng(0)
    lengths = [5, 5, 5, 3, 3, 9, 9, 13, 5, 1]  # clips of ≤ 2 chunks (here 5, 9 frames) batch; 13 frames streams
    rows = []
    for i, length in enumerate(lengths):
        path = write_video(tmp_path / f"{i}.mp4", rng.integers(0, 255, (length, 32, 32, 3), dtype=np.uint8), fps=8)
        rows.append({"path": str(path), "caption": f"clip {i}"})
    index = tmp_path / "index.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in rows))
    model = VideoTokenizer.from_pretrained(tiny_tokenizer)
    report = encode_dataset(model, index, tmp_path / "tokens", size=(32, 32), batch_size=2, batch_chunks=2)
    reader = ShardReader.open(tmp_path / "tokens")
    assert report.clips == len(lengths) and [row["caption"] for row in reader.rows] == [r["caption"] for r in rows]
    for i, row in enumerate(rows):
        streamed = encode_chunks(model, read_tokenizer_chunks(row["path"], (32, 32), 4, 1))
        assert reader.codes(i).shape == (1 + (lengths[i] - 1) // 4, 4, 4)  # padded frames dropped
        assert np.array_equal(reader.codes(i), streamed.numpy()), f"clip {i} differs"


def test_encode_clips_from_memory_match_direct_encode_in_order(tiny_tokenizer, tmp_path):
    from t2v.recipes.shapes.dataset import draw_clips
    from t2v.tokenizer.encode import encode_clips

    model = VideoTokenizer.from_pretrained(tiny_tokenizer)
    clips = list(draw_clips(num=5, frames=9, size=(32, 32), seed=3)) + list(draw_clips(num=2, frames=5, seed=4,
                                                                                        size=(32, 32)))
    report = encode_clips(model, iter(clips), tmp_path / "tokens", "drawn", batch_size=2)
    reader = ShardReader.open(tmp_path / "tokens")
    assert report.clips == 7 and [row["caption"] for row in reader.rows] == [row["caption"] for row, _ in clips]
    assert reader.meta["latent_grid"] == [4, 4] and reader.meta["fps"] == 8.0
    assert reader.meta["source_index"] == "drawn" and reader.fsq_levels() == [5, 5, 5]
    for index, (row, frames) in enumerate(clips):
        with torch.no_grad():
            direct = model.encode(to_pixels(frames))[0].numpy()
        assert np.array_equal(reader.codes(index), direct) and reader.rows[index]["size"] == [32, 32]
    assert reader.codes(6).shape == (2, 4, 4)
    with pytest.raises(ValueError, match="no clips"):
        encode_clips(model, iter([]), tmp_path / "empty", "nothing")
    assert not (tmp_path / "empty").exists()
