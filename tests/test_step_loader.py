"""tokenizer/data.py `step_loader`: batches drawn in DataLoader workers are exactly the in-process batches of
(seed, rank, step), in both phases, from any start step; files skipped in workers still reach the trainer."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from t2v.tokenizer.data import ClipDataset, Phase, draw_step, read_index, step_loader
from t2v.tokenizer.train import train
from t2v.tokenizer.config import DataConfig

from test_train import train_config

STEPS = 5


def phases(index) -> list[Phase]:
    """An image phase of 3 single frames for steps 0–1, then clips of 2."""
    images = ClipDataset(index, num_frames=1, size=(16, 16), crop="random", split="seen", seed=0)
    clips = ClipDataset(index, num_frames=5, size=(16, 16), crop="random", split="seen", seed=0)
    return [Phase(images, 3, until=2), Phase(clips, 2)]


def loaded(index, start: int = 0, num_workers: int = 2, rank: int = 0) -> list[dict]:
    loader = step_loader(phases(index), seed=3, rank=rank, steps=range(start, STEPS), num_workers=num_workers,
                         prefetch_batches=2)
    return list(loader)


@pytest.fixture(scope="module")
def index_with_corrupt_file(shapes_index, tmp_path_factory):
    """The shapes index's seen rows (absolute paths) and a corrupt mp4 among them."""
    directory = tmp_path_factory.mktemp("corrupt")
    (directory / "corrupt.mp4").write_bytes(b"not a video" * 100)
    rows = [row for row in read_index(shapes_index) if row["split"] == "seen"][:3]
    rows.append({"path": str(directory / "corrupt.mp4"), "caption": "broken", "split": "seen"})
    rows.append(dict(rows[0], split="heldout"))  # one held-out clip for the trainer's evaluation
    path = directory / "index.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_batches_equal_in_process_batches_in_both_phases(shapes_index, num_workers):
    reference = phases(shapes_index)
    batches = loaded(shapes_index, num_workers=num_workers)
    assert [tuple(batch["video"].shape) for batch in batches] == [(3, 3, 1, 16, 16)] * 2 + [(2, 3, 5, 16, 16)] * 3
    for step, batch in enumerate(batches):
        assert torch.equal(batch["video"], draw_step(reference, 3, 0, step)), step
    other_rank = loaded(shapes_index, num_workers=num_workers, rank=1)
    assert not torch.equal(other_rank[0]["video"], batches[0]["video"])


def test_loader_from_a_mid_run_step_gives_the_following_batches(shapes_index):
    whole, resumed = loaded(shapes_index), loaded(shapes_index, start=1)
    assert len(resumed) == STEPS - 1
    for a, b in zip(whole[1:], resumed):
        assert torch.equal(a["video"], b["video"])


def test_loader_leaves_the_global_rng_alone(shapes_index):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    loaded(shapes_index, num_workers=1)
    assert torch.equal(torch.rand(3), expected)


def test_skipped_file_is_carried_back_and_batches_stay_exact(index_with_corrupt_file):
    with pytest.warns(UserWarning, match="skipping .*corrupt.mp4"):  # the in-process loader warns here
        in_process = loaded(index_with_corrupt_file, num_workers=0)
    in_workers = loaded(index_with_corrupt_file, num_workers=2)
    for a, b in zip(in_process, in_workers):
        assert torch.equal(a["video"], b["video"])
    skipped = {path: reason for batch in in_workers for path, reason in batch["skipped"].items()}  # each worker's
    assert [path.rsplit("/", 1)[-1] for path in skipped] == ["corrupt.mp4"]
    assert next(iter(skipped.values())).startswith("unreadable")


def test_training_with_workers_reports_skipped_files(index_with_corrupt_file, tmp_path, capsys):
    config = train_config(index_with_corrupt_file, steps=3)
    config = dataclasses.replace(config, batch_size=4, eval_every=10, checkpoint_every=10,
                                 data=dataclasses.replace(config.data, num_workers=2, eval_clips=1))
    train(config, tmp_path)
    out = capsys.readouterr().out
    assert "skipped 1 unreadable or too-short files:" in out and "corrupt.mp4: unreadable" in out


def test_data_config_checks():
    with pytest.raises(ValueError, match="num_workers"):
        DataConfig(num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_batches"):
        DataConfig(prefetch_batches=0)


def test_batches_of_different_ranks_and_steps_never_share_a_seed():
    """The batch seed hashes (seed, rank, step): an affine mix repeated batches across ranks (rank 1 at step 0 drew
    rank 0's step 7,919)."""
    import torch

    from t2v.tokenizer import data

    class Clips:  # item i is the number i: a batch shows the indices drawn
        buckets = [list(range(10**6))]

        def __len__(self):
            return 10**6

        def set_epoch(self, epoch):
            pass

        def __getitem__(self, index):
            return {"video": torch.tensor([index])}

    batches = {(rank, step): data.draw_batch(Clips(), 4, 0, rank, step).flatten().tolist()
               for rank, step in [(0, 7919), (1, 0), (0, 0), (1, 7919), (0, 1)]}
    assert len({tuple(batch) for batch in batches.values()}) == 5
    assert batches[0, 0] == data.draw_batch(Clips(), 4, 0, 0, 0).flatten().tolist()  # still a function of them
