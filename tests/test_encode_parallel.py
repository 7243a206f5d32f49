"""`t2v tokenizer encode` over several processes: two ranks (RANK / WORLD_SIZE, as torchrun sets them) killed midway
with SIGKILL and resumed encode every clip exactly once, and the merged shards equal a single-process encode;
--device / --dtype on encode and reconstruct."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import run_main
from t2v.tokenizer.config import QuantizerConfig, preset
from t2v.tokenizer.encode import encode_dataset, partial_dir
from t2v.tokenizer.index import write_index
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.shards import ShardReader
from t2v.tokenizer.video_io import write_video

TINY = dict(channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=QuantizerConfig(fsq_levels=(5, 5, 5)),
            chunk_latent_frames=1)
CLIPS = 48


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    return VideoTokenizer(preset("tiny", **TINY)).save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """48 random clips of 9 and 5 frames in turn (each clip a batch of its own: progress grows clip by clip), one
    missing file among them."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(CLIPS):
        name = f"v/{i:02d}.mp4"
        if i != 7:
            frames = rng.integers(0, 255, (9 if i % 2 else 5, 32, 32, 3), dtype=np.uint8)
            write_video(root / name, frames, fps=8)
        rows.append({"path": name, "caption": f"clip {i}", "split": "seen"})
    return write_index(rows, root / "index.jsonl")


def entries(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in ("shard", "offset")}


def assert_same_shards(got: ShardReader, want: ShardReader) -> None:
    assert [entries(row) for row in got.rows] == [entries(row) for row in want.rows]
    for i in range(len(want)):
        assert np.array_equal(got.codes(i), want.codes(i)), i
    assert {key: value for key, value in got.meta.items() if key != "shards"} == \
        {key: value for key, value in want.meta.items() if key != "shards"}


def launch(tokenizer_dir, index, out, rank: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "t2v.cli.main", "tokenizer", "encode", str(tokenizer_dir),
                             str(index), str(out), "--size", "32", "--workers", "1", "--device", "cpu", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def progress_lines(out, rank: int) -> int:
    path = partial_dir(out) / "parts" / f"rank_{rank}" / "progress.jsonl"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


@pytest.mark.slow  # four processes that each import torch and PyAV: ~40 s on 2 busy cores
def test_two_ranks_killed_and_resumed_encode_each_clip_once(tokenizer_dir, index, tmp_path):
    with pytest.warns(UserWarning, match="skipping"):
        want = ShardReader.open(encode_dataset(VideoTokenizer.from_pretrained(tokenizer_dir), index,
                                               tmp_path / "single", size=(32, 32)).out_dir)
    out = tmp_path / "tokens"
    ranks = [launch(tokenizer_dir, index, out, rank) for rank in (0, 1)]
    deadline = time.time() + 60
    killed = set()
    while len(killed) < 2 and time.time() < deadline:  # kill each rank once its progress shows a clip
        for rank, process in enumerate(ranks):
            if rank not in killed and progress_lines(out, rank) >= 1:
                process.send_signal(signal.SIGKILL)
                killed.add(rank)
        time.sleep(0.01)
    for process in ranks:
        process.wait(timeout=30)
    assert killed == {0, 1}, [process.communicate() for process in ranks]
    done_at_kill = [progress_lines(out, rank) for rank in (0, 1)]
    assert all(1 <= done < CLIPS // 2 for done in done_at_kill), done_at_kill  # killed midway
    assert not out.exists()
    # Without --resume the partial run is refused; with other inputs too.
    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    with pytest.raises(FileExistsError, match="pass --resume"):
        encode_dataset(model, index, out, size=(32, 32), world=2)
    with pytest.raises(ValueError, match="max_frames differ"):
        encode_dataset(model, index, out, size=(32, 32), world=2, max_frames=5, resume=True)
    ranks = [launch(tokenizer_dir, index, out, rank, "--resume") for rank in (0, 1)]
    results = [process.communicate(timeout=120) for process in ranks]
    assert [process.returncode for process in ranks] == [0, 0], results
    assert "encoded 47 clips" in results[0][0] and "skipped 1" in results[0][0]
    got = ShardReader.open(out)
    assert_same_shards(got, want)
    assert [row["caption"] for row in got.rows] == [f"clip {i}" for i in range(CLIPS) if i != 7]  # each once
    assert not partial_dir(out).exists()


def test_encode_and_reconstruct_on_cpu_in_bfloat16(tokenizer_dir, index, monkeypatch, capsys, tmp_path):
    out = tmp_path / "tokens"
    code, stdout, err = run_main(["tokenizer", "encode", str(tokenizer_dir), str(index), str(out), "--workers", "0",
                                  "--device", "cpu", "--dtype", "bfloat16"], monkeypatch, capsys)
    assert code == 0 and "cpu bfloat16" in stdout and "encoded 47 clips" in stdout, err
    reader = ShardReader.open(out)
    assert reader.codes(0).shape == (2, 4, 4) and reader.codes(0).max() < 125
    video = index.parent / "v" / "01.mp4"
    code, stdout, err = run_main(["tokenizer", "reconstruct", str(tokenizer_dir), str(video), str(tmp_path / "r.mp4"),
                                  "--device", "cpu", "--dtype", "bfloat16"], monkeypatch, capsys)
    assert code == 0 and "PSNR" in stdout and (tmp_path / "r.mp4").is_file(), err
    for command in (["encode", str(tokenizer_dir), str(index), str(tmp_path / "t2")],
                    ["reconstruct", str(tokenizer_dir), str(video), str(tmp_path / "r2.mp4")]):
        code, stdout, err = run_main(["tokenizer", *command, "--device", "gpu"], monkeypatch, capsys)
        assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1 and "unknown device" in err, err
        assert not (tmp_path / "t2").exists() and not (tmp_path / "r2.mp4").exists()
    code, _, err = run_main(["tokenizer", "encode", str(tokenizer_dir), str(index), str(tmp_path / "t3"),
                             "--dtype", "float8"], monkeypatch, capsys)
    assert code == 2 and "unknown precision" in err and err.count("\n") == 1


def test_one_process_keeps_its_progress_until_merged(tokenizer_dir, index, monkeypatch, tmp_path):
    """One process is rank 0 of 1: a run stopped before the merge keeps its part, whose progress lists the clips in
    index order; the resumed run only merges."""
    import t2v.tokenizer.encode as encode_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    model = VideoTokenizer.from_pretrained(tokenizer_dir)
    out = tmp_path / "tokens"
    monkeypatch.setattr(encode_module, "merge_parts", interrupted)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="skipping"):
        encode_dataset(model, index, out, size=(32, 32), workers=2)
    monkeypatch.undo()
    lines = (partial_dir(out) / "parts" / "rank_0" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["clip"] for line in lines] == list(range(CLIPS))
    report = encode_dataset(model, index, out, size=(32, 32), resume=True)
    assert report.clips == CLIPS - 1 and len(report.skipped) == 1 and not partial_dir(out).exists()
