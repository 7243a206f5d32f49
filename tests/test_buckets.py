"""Several sizes on the tokenizer side: clips sorted into aspect-ratio buckets, single-size training batches,
and token shards holding several latent grids (encode → read back → generator sequences)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import tiny_config, tiny_model
from t2v.recipes.shapes.dataset import make_dataset
from t2v.tokenizer.data import ClipDataset, nearest_bucket
from t2v.tokenizer.encode import encode_dataset
from t2v.tokenizer.config import LossConfig
from t2v.tokenizer.shards import ShardReader
from t2v.tokenizer.frames import to_pixels
from t2v.tokenizer.data import draw_batch
from t2v.tokenizer.train import train
from t2v.tokenizer.config import DataConfig, TokenizerTrainConfig
from t2v.tokenizer.video_io import read_video, resize_and_crop

BUCKETS = [(16, 16), (16, 24)]  # (H, W): 1:1 and 3:2


@pytest.fixture(scope="module")
def two_size_index(tmp_path_factory):
    """12 shapes clips of 9 frames, alternately 32×32 and 32×48 (H×W), at 8 and 16 fps."""
    return make_dataset(tmp_path_factory.mktemp("two") / "data", num=12, frames=9, seed=0,
                        sizes=[(32, 32), (32, 48)], rates=[8, 16])


def test_nearest_bucket_by_aspect_ratio():
    buckets = [(64, 64), (48, 64), (36, 64), (64, 36)]  # 1:1, 4:3, 16:9, 9:16 (H, W)
    assert [nearest_bucket(size, buckets) for size in [(100, 100), (480, 640), (720, 1280), (1280, 720),
                                                       (100, 300), None]] == [0, 1, 2, 3, 2, 0]


def test_bucketed_dataset_gives_clips_of_each_rows_bucket_size(two_size_index):
    data = ClipDataset(two_size_index, num_frames=5, size=(16, 16), buckets=BUCKETS)
    rows = [json.loads(line) for line in two_size_index.read_text().splitlines()]
    assert [data.size_of(i) for i in range(len(data))] == [BUCKETS[row["size"][1] > 32] for row in rows]
    assert [len(bucket) for bucket in data.buckets] == [6, 6]
    assert data[0]["video"].shape == (3, 5, 16, 16) and data[2]["video"].shape == (3, 5, 16, 24)
    single = ClipDataset(two_size_index, num_frames=5, size=(16, 16))  # no buckets: every clip at `size`
    assert [bucket.tolist() for bucket in single.buckets] == [list(range(12))]
    assert single[2]["video"].shape == (3, 5, 16, 16)


def test_tokenizer_batches_hold_one_bucket_and_are_a_function_of_seed_rank_step(two_size_index):
    data = ClipDataset(two_size_index, num_frames=5, size=(16, 16), buckets=BUCKETS)
    shapes = set()
    for step in range(8):
        batch = draw_batch(data, 3, seed=0, rank=0, step=step)
        assert batch.shape[:3] == (3, 3, 5)
        shapes.add(tuple(batch.shape[3:]))
        assert torch.equal(batch, draw_batch(data, 3, seed=0, rank=0, step=step))
    assert shapes == {(16, 16), (16, 24)}  # both buckets are drawn, each batch from one


def test_tokenizer_trains_and_evaluates_on_two_buckets(two_size_index, tmp_path):
    config = TokenizerTrainConfig(
        name="test", model=tiny_config(), loss=LossConfig(perceptual_weight=0, discriminator_start=100),
        data=DataConfig(index=str(two_size_index), train_split=None, eval_split=None, num_frames=5, size=(16, 16),
                        eval_clips=4, buckets=BUCKETS),
        steps=2, batch_size=2, log_every=1, eval_every=2, checkpoint_every=2, num_samples=3)
    result = train(config, tmp_path)
    assert result.clips == 4 and np.isfinite(result.psnr)  # evaluated in batches of one size
    samples, _ = read_video(next((tmp_path / "samples").glob("*.mp4")))
    assert samples.shape[1:3] == (3 * 16, 2 * 24)  # rows padded to the widest (side by side)
    with pytest.raises(ValueError, match="buckets"):
        dataclasses.replace(config.data, buckets=[(16, 0)])


def test_shards_with_two_grids_round_trip(two_size_index, tmp_path):
    model = tiny_model()
    report = encode_dataset(model, two_size_index, tmp_path / "tokens", size=(16, 16), buckets=BUCKETS)
    reader = ShardReader.open(report.out_dir)
    assert reader.meta["latent_grids"] == [[2, 2], [2, 3]] and "latent_grid" not in reader.meta
    assert [reader.grid(i) for i in range(len(reader))] == [(2, 2), (2, 2), (2, 3), (2, 3)] * 3
    assert [reader.fps(i) for i in range(4)] == [8.0, 16.0, 8.0, 16.0]
    for i in (0, 3):  # the codes are those of the clip encoded alone at its bucket's size
        frames, _ = read_video(reader.rows[i]["path"])
        with torch.no_grad():
            direct = model.encode(to_pixels(resize_and_crop(frames, BUCKETS[reader.grid(i)[1] == 3])))[0]
        assert np.array_equal(reader.codes(i), direct.numpy())


def test_generator_sequences_from_two_grid_shards(two_size_index, text, tmp_path):
    from t2v.generator.data import TokenSequences
    from t2v.generator.train import trained_tables
    from t2v.generator.vocab import Vocab

    model = tiny_model()
    reader = ShardReader.open(encode_dataset(model, two_size_index, tmp_path / "t", size=(16, 16),
                                             buckets=BUCKETS).out_dir)
    sizes, rates = trained_tables(reader, None)
    assert sizes == [[2, 2], [2, 3]] and rates == [8.0, 16.0]
    vocab = Vocab(text.size, model.codebook_size, 10, ((2, 2), (2, 3)), (8.0, 16.0))
    data = TokenSequences(reader, text, vocab)
    lengths = {len(data[i]["ids"]) for i in range(len(data))}
    assert lengths == {vocab.sequence_len(3, 2, 2), vocab.sequence_len(3, 2, 3)}
    assert data[3]["ids"][vocab.prefix_len - 3: vocab.prefix_len - 1].tolist() == [vocab.size_start + 1,
                                                                                   vocab.rate_start + 1]
