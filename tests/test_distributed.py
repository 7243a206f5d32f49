"""core/distributed.py + tokenizer/train.py under torchrun: 2 CPU ranks (gloo) train a tiny tokenizer and end equal."""
from __future__ import annotations

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_torchrun
from t2v.core import distributed

SCRIPT = textwrap.dedent('''
    """Run by each torchrun rank: 3 training steps; dumps this rank's final weights and its per-step losses."""
    import json, sys
    from pathlib import Path

    from safetensors.torch import save_file

    from t2v.tokenizer.config import DataConfig, LossConfig, QuantizerConfig, TokenizerTrainConfig, preset
    from t2v.tokenizer.train import Trainer, train

    index, quantizer, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    losses = []
    real_step, real_save = Trainer.train_step, Trainer.save

    def train_step(self, video):
        logs = real_step(self, video)
        losses.append(float(logs["loss"]))
        return logs

    def save(self):
        real_save(self)
        if self.step == self.config.steps:
            state = {f"model.{k}": v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
            state.update({f"disc.{k}": v.detach().contiguous().clone()
                          for k, v in self.loss.discriminator.state_dict().items()})
            save_file(state, str(out / f"rank{self.rank}.safetensors"))
            (out / f"rank{self.rank}.json").write_text(json.dumps({"world": self.world, "losses": losses}))

    Trainer.train_step, Trainer.save = train_step, save
    config = TokenizerTrainConfig(
        name="dist", model=preset("tiny", channels=(8, 8, 16, 16), quantizer=QuantizerConfig(
            kind=quantizer, fsq_levels=(4, 4, 4), vq_codebook_size=32, vq_dim=4)),
        loss=LossConfig(perceptual_weight=0, discriminator_start=1, discriminator_channels=4),
        data=DataConfig(index=index, train_split="seen", eval_split="heldout", num_frames=5, size=(16, 16),
                        eval_clips=1),
        steps=3, batch_size=1, log_every=1, eval_every=1000, checkpoint_every=1000, num_samples=1)
    train(config, out / "run")
''')


def run_two_ranks(tmp_path, index, quantizer: str) -> dict:
    run_torchrun(SCRIPT, [str(index), quantizer, str(tmp_path)], tmp_path, timeout=180)
    return {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)}


def assert_ranks_equal(tmp_path) -> None:
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert rank0.keys() == rank1.keys()
    different = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert different == [], f"weights differ between ranks: {different[:5]}"
    exported = load_file(str(tmp_path / "run" / "model.safetensors"))  # written by rank 0 only
    assert {f"model.{k}" for k in exported} == {k for k in rank1 if k.startswith("model.")}
    for name, tensor in exported.items():
        assert torch.equal(tensor, rank1[f"model.{name}"]), name


@pytest.mark.distributed
@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_two_cpu_ranks_end_with_identical_weights(tmp_path, shapes_index, quantizer):
    """With VQ this also checks that the EMA codebook buffers stay in sync across ranks."""
    reports = run_two_ranks(tmp_path, shapes_index, quantizer)
    assert reports[0]["world"] == reports[1]["world"] == 2
    assert len(reports[0]["losses"]) == len(reports[1]["losses"]) == 3
    # each rank trained on its own batches (so equal weights come from the gradient all-reduce) ...
    assert reports[0]["losses"][0] != reports[1]["losses"][0]
    # ... and both ended with rank 0's exported weights, discriminator included
    assert_ranks_equal(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]  # one writer: rank 0
    assert rows[0]["loss"] == pytest.approx(reports[0]["losses"][0])
    assert "d_loss" in rows[1]  # the discriminator step ran (and was all-reduced) from step 2 on
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_00000003.mp4"]


def test_helpers_without_process_group(monkeypatch):
    """A plain single process: setup reports rank 0 of 1, nothing is wrapped and the collectives are no-ops."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    rank, world, device = distributed.setup()
    assert (rank, world, device.type) == (0, 1, "cuda" if torch.cuda.is_available() else "cpu")
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap(module) is module
    with distributed.accumulating(module, last=False):
        module(torch.ones(1, 2)).sum().backward()
    distributed.barrier()
    assert torch.equal(module.weight.grad, torch.ones(2, 2))
    assert torch.equal(distributed.all_sum(torch.tensor([3.0])), torch.tensor([3.0]))
    seeds = {distributed.rank_seed(seed, rank) for seed in (0, 1) for rank in (0, 1)}
    assert len(seeds) == 4 and distributed.rank_seed(0, 1) == distributed.rank_seed(0, 1)
