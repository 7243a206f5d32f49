"""Fault injection: tiny tokenizer and generator runs killed (`os._exit`, as by kill -9: no cleanup, no flush) at every
point of their save sequences and at random steps, then resumed; the resumed run must equal the uninterrupted one.

A point of the save sequence is a file-system change: each rename (`os.replace`: every atomic write's last act,
the checkpoint directory's move, the export, `latest`) and each tree removal (`shutil.rmtree`: pruning, staging).
A census run (not killed) lists them; each killed run counts the same events and dies just before the chosen one.
Runs are forked from a `forkserver` that imported torch, DeepSpeed and the trainers once, so a killed run costs its
training steps, not the imports.

After each resume: every step's losses are bit-identical to the uninterrupted run's and logged once, every
evaluation line is there once, the export holds the final weights (bit-identical) and says so, `latest` names the
final step, and no temporary entry is left anywhere in the run directory.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config

KILLED = 137  # the exit status a killed run reports here
TOKENIZER_STEPS, GENERATOR_STEPS = 6, 6
_CONTEXT: Any = None


# 1. Runs in forked children -------------------------------------------------------------------------------------
def _context():
    """A forkserver that preloads the heavy modules (made once per test session)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["torch", "deepspeed", "t2v.tokenizer.train", "t2v.generator.train"])
    return _CONTEXT


class Events:
    """Counts the file-system changes of a run, each tagged with the training step that preceded it; `kill` (the
    step and the event's number after it) ends the process just before that event."""

    def __init__(self, kill: tuple[int, int] | None, log: Path | None) -> None:
        self.step, self.count, self.kill, self.log = 0, 0, kill, log
        self.seen: list[tuple[int, int, str]] = []

    def event(self, kind: str, path: Any) -> None:
        self.count += 1
        if (self.step, self.count) == self.kill:
            os._exit(KILLED)
        self.seen.append((self.step, self.count, f"{kind} {Path(path).name}"))

    def new_step(self, step: int) -> None:
        """Called as training step `step` (0-based) begins; kill (step, 0) dies right there."""
        self.step, self.count = step, 0
        if self.kill == (step, 0):
            os._exit(KILLED)

    def install(self, trainer_class: type) -> None:
        real_replace, real_rmtree, real_step = os.replace, shutil.rmtree, trainer_class.train_step

        def replace(source, target, *args, **kwargs):
            self.event("replace", target)
            return real_replace(source, target, *args, **kwargs)

        def rmtree(path, *args, **kwargs):
            self.event("rmtree", path)
            return real_rmtree(path, *args, **kwargs)

        def train_step(trainer, *args, **kwargs):
            self.new_step(trainer.step)
            return real_step(trainer, *args, **kwargs)

        os.replace, shutil.rmtree, trainer_class.train_step = replace, rmtree, train_step

    def save(self) -> None:
        if self.log is not None:
            self.log.write_text(json.dumps(self.seen))


def run_child(kind: str, config: Any, run_dir: str, resume: bool, kill: tuple[int, int] | None,
              log: str | None) -> None:
    """The body of a forked run: train `kind` ("tokenizer" or "generator") with the event counter installed."""
    torch.set_num_threads(1)
    if kind == "tokenizer":
        from t2v.tokenizer.train import Trainer, train
    else:
        from t2v.generator.train import Trainer, train
    events = Events(kill, Path(log) if log else None)
    events.install(Trainer)
    train(config, run_dir, resume=resume)
    events.save()


def forked(kind: str, config: Any, run_dir: Path, kill: tuple[int, int] | None = None, log: Path | None = None,
           resume: bool = False) -> int:
    """Run `run_child` in a forked process; its exit status."""
    process = _context().Process(target=run_child, args=(kind, config, str(run_dir), resume, kill,
                                                         str(log) if log else None))
    process.start()
    process.join(timeout=300)
    assert process.exitcode is not None, "the run hung"
    return process.exitcode


# 2. What a resumed run must show ------------------------------------------------------------------------------
def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def comparable(rows: list[dict], drop: tuple[str, ...]) -> list[dict]:
    """Metric lines without their wall-clock fields (time, speed)."""
    return [{key: value for key, value in row.items() if key not in drop} for row in rows]


def temp_entries(run_dir: Path) -> list[str]:
    from t2v.core.atomic import is_temp_name

    return [str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if is_temp_name(p.name)]


def assert_same_run(reference: Path, resumed: Path, steps: int, drop: tuple[str, ...]) -> None:
    from t2v.core.checkpoint import exported_step

    assert comparable(records(resumed), drop) == comparable(records(reference), drop)  # bit-identical, each once
    expected, actual = load_file(str(reference / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert exported_step(resumed) == steps
    assert (resumed / "checkpoints" / "latest").read_text().strip() == f"step_{steps:08d}"
    assert temp_entries(resumed) == []


def kill_points(census: list[tuple[int, int, str]], save_steps: tuple[int, ...]) -> list[tuple[int, int]]:
    """Every event after the training steps that end at `save_steps` (1-based), and the start of the next step."""
    points = [(step, count) for step, count, _ in census if step + 1 in save_steps]
    return points + [(step, 0) for step in save_steps if step < max(s for s, _, _ in census) + 1]


def check_kills(kind: str, config: Any, tmp_path: Path, save_steps: tuple[int, ...], random_steps: tuple[int, ...],
                drop: tuple[str, ...], resume_in_process) -> list[tuple[int, int]]:
    reference, log = tmp_path / "reference", tmp_path / "census.json"
    assert forked(kind, config, reference, log=log) == 0
    census = [tuple(item) for item in json.loads(log.read_text())]
    points = kill_points(census, save_steps) + [(step, 0) for step in random_steps]
    assert len(points) >= 8, census  # the save sequence has several durable steps; a census that misses them is wrong
    for point in points:
        run_dir = tmp_path / f"killed_{point[0]}_{point[1]}"
        assert forked(kind, config, run_dir, kill=point) == KILLED, point
        if (run_dir / "checkpoints" / "latest").is_file():
            resume_in_process(config, run_dir, True)
        else:  # killed before the first checkpoint: a fresh start in a new directory is the only way on
            with pytest.raises(FileExistsError, match="killed before its first checkpoint"):
                resume_in_process(config, run_dir, False)
            resume_in_process(config, tmp_path / f"again_{point[0]}_{point[1]}", False)
            run_dir = tmp_path / f"again_{point[0]}_{point[1]}"
        assert_same_run(reference, run_dir, config.steps, drop)
    return points


# 3. The two trainers -------------------------------------------------------------------------------------------
def tokenizer_config(index):
    from t2v.tokenizer.config import LossConfig
    from t2v.tokenizer.config import DataConfig, TokenizerTrainConfig

    return TokenizerTrainConfig(
        name="fault", model=tiny_config("fsq"),
        loss=LossConfig(perceptual_weight=0, discriminator_start=2, discriminator_channels=4),
        data=DataConfig(index=str(index), train_split="seen", eval_split="heldout", num_frames=5, size=(16, 16),
                        eval_clips=2, num_workers=0),
        steps=TOKENIZER_STEPS, batch_size=2, log_every=1, eval_every=2, checkpoint_every=2, num_samples=1)


def test_tokenizer_killed_anywhere_resumes_exactly(shapes_index, tmp_path):
    from t2v.tokenizer.train import train

    points = check_kills("tokenizer", tokenizer_config(shapes_index), tmp_path, save_steps=(4, TOKENIZER_STEPS),
                         random_steps=(1, 5), drop=("time",),
                         resume_in_process=lambda config, run_dir, resume: train(config, run_dir, resume=resume))
    assert any(point[1] > 0 for point in points)


@pytest.fixture(scope="module")
def generator_inputs(tmp_path_factory):
    """Token shards of 24 clips (latent grid 2×4×4) and a tiny tokenizer for the samples written at checkpoints."""
    from conftest import tiny_model, tiny_shards

    shards = tiny_shards(tmp_path_factory.mktemp("tokens") / "shards", clips=24)
    return shards, tiny_model().save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


def generator_config(shards, tokenizer_dir):
    from t2v.generator.config import GeneratorConfig
    from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig

    return GeneratorTrainConfig(
        name="fault", model=GeneratorConfig(layers=1, hidden=32, heads=2, kv_heads=2, intermediate=64),
        data=GeneratorDataConfig(shards=str(shards), train_split="seen", eval_split="heldout", text_vocab_size=64,
                                 max_text_len=12, eval_clips=4),
        optim=GeneratorOptimConfig(lr=5e-3, warmup_steps=2), steps=GENERATOR_STEPS, batch_size=2, grad_accum=2,
        log_every=1, checkpoint_every=2, sample_every=GENERATOR_STEPS,
        sample_prompts=["a red circle moving left slowly"],
        tokenizer_dir=str(tokenizer_dir))


def test_generator_killed_anywhere_resumes_exactly(generator_inputs, tmp_path):
    from t2v.generator.train import train

    config = generator_config(*generator_inputs)
    check_kills("generator", config, tmp_path, save_steps=(4, GENERATOR_STEPS), random_steps=(1, 3),
                drop=("tokens_per_s",),
                resume_in_process=lambda config, run_dir, resume: train(config, run_dir, resume=resume))
    samples = sorted(p.name for p in (tmp_path / "reference" / "samples").iterdir())
    assert samples == [f"step_{GENERATOR_STEPS:08d}"]
    resumed = [d for d in tmp_path.iterdir() if d.name.startswith(("killed_", "again_"))
               and (d / "checkpoints" / "latest").is_file()]
    assert len(resumed) >= 8
    for run_dir in resumed:  # the final samples exist after every resume
        assert sorted(p.name for p in (run_dir / "samples").iterdir()) == samples, run_dir
