"""generator/train.py with DeepSpeed on CPU: learning, run directory, exact resume, export, 2 ranks, errors, CLI.

Tiny model (2 layers, 64 wide) on fake shards: codes (2, 4, 4) that follow from the caption, so the loss can fall.
"""
from __future__ import annotations

import dataclasses
import json
import os
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from conftest import run_torchrun, tiny_model
from t2v.cli.generator import generator as generator_cli
from t2v.generator.model import VideoGenerator
from t2v.generator.config import GeneratorConfig
from t2v.generator.batches import draw_micro_batch
from t2v.generator.train import Trainer, train
from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.recipes.shapes.dataset import all_captions, split_of
from t2v.tokenizer.shards import ShardWriter

GRID, CODEBOOK, STEPS = (2, 4, 4), 64, 10
PROMPTS = ["a red circle moving left slowly", "a blue square moving up quickly"]


def write_fake_shards(directory, meta: dict | None = None):
    """48 clips of the shapes captions; clip codes are a ramp offset by the caption's number (learnable)."""
    captions = all_captions()
    rng = np.random.default_rng(0)
    writer = ShardWriter(directory, CODEBOOK)
    for i in range(48):
        caption = captions[int(rng.integers(len(captions)))]
        codes = (np.arange(np.prod(GRID)).reshape(GRID) + captions.index(caption)) % CODEBOOK  # (t, h, w)
        writer.add(codes, {"caption": caption.text, "split": split_of(caption), "path": f"clip{i}.mp4"})
    return writer.close({"fps": 8.0, **(meta or {})})


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_fake_shards(tmp_path_factory.mktemp("tokens") / "shards")


@pytest.fixture(scope="module")
def video_tokenizer(tmp_path_factory):
    """A random tiny tokenizer with 64 codes whose latent grid of 5 frames at 32×32 is (2, 4, 4): for samples."""
    model = tiny_model()
    assert model.codebook_size == CODEBOOK and model.latent_shape(5, 32, 32) == GRID
    return model.save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


def train_config(shards, steps: int = STEPS, **overrides) -> GeneratorTrainConfig:
    values = dict(
        name="test", model=GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128),
        data=GeneratorDataConfig(shards=str(shards), train_split="seen", eval_split="heldout", caption_dropout=0.1,
                                 text_vocab_size=64, max_text_len=12),
        optim=GeneratorOptimConfig(lr=5e-3, warmup_steps=2), steps=steps, batch_size=4, grad_accum=2,
        log_every=1, checkpoint_every=5)
    return GeneratorTrainConfig(**{**values, **overrides})


def metrics(run_dir, kind: str = "loss") -> list[dict]:
    """The metrics.jsonl lines holding `kind`: `loss` (training steps) or `eval_loss` (held-out, at checkpoints)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if kind in row]


@pytest.fixture(scope="module")
def reference(shards, video_tokenizer, tmp_path_factory):
    """An uninterrupted 10-step run with samples at the end, in a fresh TORCH_EXTENSIONS_DIR."""
    run_dir, extensions = tmp_path_factory.mktemp("reference"), tmp_path_factory.mktemp("extensions")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
        result = train(train_config(shards, tokenizer_dir=str(video_tokenizer), sample_every=STEPS,
                                    sample_prompts=PROMPTS), run_dir)
    return run_dir, result, extensions


def test_training_learns_and_writes_the_run_directory(reference):
    run_dir, result, extensions = reference
    rows = metrics(run_dir)
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]  # the codes follow from the caption: it learns
    assert all(row["grad_norm"] > 0 and row["tokens_per_s"] > 0 for row in rows)
    assert rows[0]["lr"] == pytest.approx(2.5e-3) and rows[1]["lr"] == pytest.approx(5e-3)  # warmup 2 steps
    assert result.steps == STEPS and result.loss == rows[-1]["loss"] and result.tokens_per_second > 0
    held_out = metrics(run_dir, "eval_loss")  # the held-out split's loss at each checkpoint
    assert [row["step"] for row in held_out] == [5, 10] and held_out[1]["eval_loss"] < held_out[0]["eval_loss"]

    names = {p.name for p in run_dir.iterdir()}
    assert names == {"config.json", "model.safetensors", "text.model", "text.json", "metrics.jsonl", "checkpoints",
                     "samples", ".lock"}  # nothing staged or temporary left behind (.lock: the run's lock file)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest", "step_00000005",
                                                                            "step_00000010"]
    assert {p.name for p in (run_dir / "checkpoints" / "step_00000010").iterdir()} >= {"rank0.json", "rank0.safetensors"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["steps"] == STEPS and config["model"]["codebook_size"] == CODEBOOK
    assert config["model"]["max_text_len"] == 12 and 20 <= config["model"]["text_size"] <= 64
    samples = sorted((run_dir / "samples" / "step_00000010").iterdir())
    assert [p.name for p in samples] == ["00_a_red_circle_moving_left_slowly.mp4",
                                         "01_a_blue_square_moving_up_quickly.mp4"]
    assert all(p.stat().st_size > 0 for p in samples)
    assert not list(extensions.iterdir())  # DeepSpeed compiled nothing (its CPU shm op is skipped)


def test_exported_model_loads_and_equals_the_engine_weights(reference):
    run_dir, _, _ = reference
    model = VideoGenerator.from_pretrained(run_dir)
    engine_state = torch.load(run_dir / "checkpoints" / "step_00000010" / "mp_rank_00_model_states.pt",
                              map_location="cpu", weights_only=False)["module"]
    assert model.state_dict().keys() == engine_state.keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, engine_state[name]), name
    assert model.config.codebook_size == CODEBOOK and model.config.layers == 2


def test_resume_after_kill_gives_exactly_the_same_losses(reference, shards, tmp_path, monkeypatch):
    """Killed during step 7 (checkpoint at 5, step 6 logged): resume re-runs 6…10 with bit-identical losses."""
    real_step = Trainer.train_step

    def killed(self, micro_batches, want_norm):
        if self.step == 6:
            raise KeyboardInterrupt
        return real_step(self, micro_batches, want_norm)

    monkeypatch.setattr(Trainer, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(train_config(shards), tmp_path)
    monkeypatch.undo()
    assert [row["step"] for row in metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000005"
    assert "WORLD_SIZE" not in os.environ  # the single-process defaults were removed after the kill

    train(train_config(shards), tmp_path, resume=True)
    expected, resumed = metrics(reference[0]), metrics(tmp_path)
    assert [row["step"] for row in resumed] == list(range(1, STEPS + 1))  # the stale step-6 line was dropped
    for a, b in zip(expected, resumed):
        assert (a["step"], a["loss"], a["lr"], a["grad_norm"]) == (b["step"], b["loss"], b["lr"], b["grad_norm"])
    assert metrics(reference[0], "eval_loss") == metrics(tmp_path, "eval_loss")
    a, b = load_file(str(reference[0] / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_micro_batches_are_a_function_of_seed_rank_step_micro(reference, shards):
    from t2v.generator.data import TokenSequences
    from t2v.generator.text import TextTokenizer

    run_dir = reference[0]
    config = train_config(shards)
    vocab = VideoGenerator.from_pretrained(run_dir).vocab
    dataset = TokenSequences(shards, TextTokenizer.load(run_dir), vocab, "seen", caption_dropout=0.5, seed=0)
    first = draw_micro_batch(dataset, config, rank=0, step=3, micro=1)
    length = vocab.sequence_len(*GRID)
    assert first["ids"].shape == (4, length) and first["positions"].shape == (4, 3, length)
    draw_micro_batch(dataset, config, rank=1, step=0, micro=0)
    assert all(torch.equal(first[k], v) for k, v in draw_micro_batch(dataset, config, 0, 3, 1).items())
    for other in [(1, 3, 1), (0, 4, 1), (0, 3, 0)]:
        assert not torch.equal(first["ids"], draw_micro_batch(dataset, config, *other)["ids"]), other


@pytest.fixture(scope="module")
def two_grid_shards(tmp_path_factory):
    """40 clips at two latent grids, (4, 4) and (4, 6) (h, w), and two rates, 8 and 16 fps (rows' fps)."""
    captions = all_captions()
    rng = np.random.default_rng(1)
    writer = ShardWriter(tmp_path_factory.mktemp("tokens2") / "shards", CODEBOOK)
    for i in range(40):
        caption = captions[int(rng.integers(len(captions)))]
        grid = (2, 4, 6) if i % 4 < 2 else GRID  # 20 clips each
        writer.add(rng.integers(0, CODEBOOK, grid), {"caption": caption.text, "split": split_of(caption),
                                                     "fps": 16.0 if i % 2 else 8.0})
    return writer.close({"latent_grids": [[4, 4], [4, 6]]})


def test_micro_batches_of_two_grids_hold_one_grid_each_and_are_deterministic(two_grid_shards):
    from t2v.generator.data import TokenSequences
    from t2v.generator.text import TextTokenizer
    from t2v.generator.train import trained_tables
    from t2v.generator.vocab import Vocab
    from t2v.tokenizer.shards import ShardReader

    sizes, rates = trained_tables(ShardReader.open(two_grid_shards), "seen")
    assert sizes == [[4, 4], [4, 6]] and rates == [8.0, 16.0]
    text = TextTokenizer.train([c.text for c in all_captions()], 64, 12)
    vocab = Vocab(text.size, CODEBOOK, 12, tuple(map(tuple, sizes)), tuple(rates))
    dataset = TokenSequences(two_grid_shards, text, vocab, "seen", caption_dropout=0.1)
    assert len(dataset.buckets) == 2 and sum(map(len, dataset.buckets)) == len(dataset)
    config = train_config(two_grid_shards)
    lengths = set()
    for step in range(12):
        batch = draw_micro_batch(dataset, config, rank=0, step=step, micro=0)
        size_ids = batch["ids"][:, vocab.prefix_len - 3]
        assert len(set(size_ids.tolist())) == 1  # one grid per micro-batch ...
        assert (batch["labels"] != -100).sum() == config.batch_size * (32 if size_ids[0] == vocab.size_start else 48)
        lengths.add(batch["ids"].shape[1])  # ... so no padding
        again = draw_micro_batch(dataset, config, rank=0, step=step, micro=0)
        assert all(torch.equal(batch[k], v) for k, v in again.items())
    assert lengths == {vocab.sequence_len(2, 4, 4), vocab.sequence_len(2, 4, 6)}


def test_training_on_two_grids_records_the_size_and_rate_tables(two_grid_shards, tmp_path):
    result = train(train_config(two_grid_shards, steps=2, checkpoint_every=2), tmp_path)
    assert np.isfinite(result.loss)
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert saved["sizes"] == [[4, 4], [4, 6]] and saved["rates"] == [8.0, 16.0]
    vocab = VideoGenerator.from_pretrained(tmp_path).vocab
    assert vocab.sizes == ((4, 4), (4, 6)) and vocab.rates == (8.0, 16.0)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_stages_train_and_export(shards, tmp_path, stage):
    result = train(train_config(shards, steps=2, zero_stage=stage, checkpoint_every=2), tmp_path)
    assert result.steps == 2 and np.isfinite(result.loss)
    model = VideoGenerator.from_pretrained(tmp_path)
    assert model.config.codebook_size == CODEBOOK and all(torch.isfinite(p).all() for p in model.parameters())
    train(train_config(shards, steps=3, zero_stage=stage, checkpoint_every=2), tmp_path, resume=True)
    assert [row["step"] for row in metrics(tmp_path)] == [1, 2, 3]


def test_missing_shards_and_missing_checkpoint_are_clear_errors(shards, tmp_path):
    with pytest.raises(FileNotFoundError, match="token shards not found in .*nowhere.*t2v tokenizer encode"):
        train(train_config(tmp_path / "nowhere"), tmp_path / "run")
    with pytest.raises(ValueError, match="no clips of split 'test'"):
        train(dataclasses.replace(train_config(shards), data=GeneratorDataConfig(shards=str(shards),
                                                                                  train_split="test")), tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(train_config(shards), tmp_path / "fresh", resume=True)
    with pytest.raises(ValueError, match="zero_stage"):
        train_config(shards, zero_stage=4)
    # the shards record no FSQ tokenizer: factorized code embeddings cannot know its digits
    factorized = GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128, codebook_size=CODEBOOK,
                                 code_levels=[4, 4, 4])
    with pytest.raises(ValueError, match=r"model.code_levels \[4, 4, 4\] are not the FSQ levels"):
        train(train_config(shards, model=factorized), tmp_path / "levels")


def test_cli_dry_run_prints_the_config_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(generator_cli, ["train", "shapes", "--dry-run", "--variant", "quick",
                                                "--shards", "tok", "--set", "zero_stage=1"])
    assert result.exit_code == 0, result.output
    assert "zero_stage: 1" in result.output and "shards: tok" in result.output and "name: shapes" in result.output
    assert "run directory: runs/shapes-generator-00001" in result.output
    assert not (tmp_path / "runs").exists()
    missing = CliRunner().invoke(generator_cli, ["train", "shapes", "--shards", "nowhere"])
    assert isinstance(missing.exception, FileNotFoundError) and "token shards not found" in str(missing.exception)


RANK_SCRIPT = textwrap.dedent('''
    """Run by each torchrun rank: 3 steps at ZeRO stage `stage`; dumps this rank's final weights and first batch."""
    import json, sys
    from pathlib import Path

    from safetensors.torch import save_file

    from t2v.generator.config import GeneratorConfig, GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
    from t2v.generator.train import gathered
    from t2v.generator.train import Trainer, train

    shards, stage, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    first_ids = []
    real_step, real_save = Trainer.train_step, Trainer.save

    def train_step(self, micro_batches, want_norm):
        first_ids.append(micro_batches[0]["ids"].tolist())
        return real_step(self, micro_batches, want_norm)

    def save(self, samples=False):
        real_save(self, samples)
        if self.step == self.config.steps:
            with gathered(self.engine):  # ZeRO-3: every rank holds only its shard of the parameters
                state = {k: v.detach().float().contiguous().clone()
                         for k, v in self.engine.module.state_dict().items()}
            save_file(state, str(out / f"rank{self.rank}.safetensors"))
            (out / f"rank{self.rank}.json").write_text(json.dumps({"world": self.world, "ids": first_ids[0]}))

    Trainer.train_step, Trainer.save = train_step, save
    config = GeneratorTrainConfig(
        name="dist", model=GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128),
        data=GeneratorDataConfig(shards=shards, train_split="seen", eval_split="heldout", max_text_len=8),
                                 optim=GeneratorOptimConfig(lr=3e-3, warmup_steps=1),
        steps=3, batch_size=2, grad_accum=2, zero_stage=stage, log_every=1, checkpoint_every=2)
    train(config, out / "run")
''')


@pytest.mark.distributed
@pytest.mark.parametrize("stage", [0, 3])
def test_two_cpu_ranks_end_with_identical_weights(shards, tmp_path, stage):
    """2 gloo ranks under torchrun end with equal weights = the export: stage 0 (gradient all-reduce) and ZeRO-3
    (parameters, gradients and optimizer states sharded; gathered to export)."""
    run_torchrun(RANK_SCRIPT, [str(shards), str(stage), str(tmp_path)], tmp_path)
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert reports[0]["world"] == reports[1]["world"] == 2
    assert reports[0]["ids"] != reports[1]["ids"]  # each rank drew its own batches ...
    rank0, rank1 = (load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in (0, 1))
    exported = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert rank0.keys() == rank1.keys() == exported.keys()
    for name in rank0:  # ... and gradients were averaged: equal weights everywhere, equal to the export
        assert torch.equal(rank0[name], rank1[name]) and torch.equal(rank0[name], exported[name]), name
    run = tmp_path / "run"
    assert [row["step"] for row in metrics(run)] == [1, 2, 3]  # one writer: rank 0
    assert {"rank0.json", "rank1.json"} <= {p.name for p in (run / "checkpoints" / "step_00000003").iterdir()}


@pytest.mark.parametrize("code_levels", [[], [4, 4, 4]])
def test_zero1_logged_eval_loss_equals_the_export_reevaluated(shards, tmp_path, code_levels):
    """ZeRO-1 writes weights through `.data` (no version bump): the logged held-out loss must still be that of the
    weights of its step, i.e. of the export written at the same checkpoint."""
    from t2v.generator.data import TokenSequences
    from t2v.generator.text import TextTokenizer
    from t2v.generator.train import held_out_loss

    if code_levels:  # factorized code vectors: the output weight the sampler keeps between calls
        shards = write_fake_shards(tmp_path / "fsq", {"tokenizer": {"quantizer": {"kind": "fsq",
                                                                                  "fsq_levels": code_levels}}})
    model = dataclasses.replace(train_config(shards).model, code_levels=code_levels, codebook_size=CODEBOOK)
    config = train_config(shards, steps=4, zero_stage=1, checkpoint_every=2, model=model)  # evaluated twice
    tmp_path = tmp_path / "run"
    train(config, tmp_path)
    logged = metrics(tmp_path, "eval_loss")[-1]
    assert logged["step"] == 4
    exported = VideoGenerator.from_pretrained(tmp_path)
    data = TokenSequences(shards, TextTokenizer.load(tmp_path), exported.vocab, "heldout")
    again = held_out_loss(exported, data, config.data.eval_clips, config.batch_size, torch.device("cpu"))
    assert again == pytest.approx(logged["eval_loss"], abs=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(shards):
    from t2v.generator.data import TokenSequences
    from t2v.generator.text import TextTokenizer
    from t2v.generator.train import sequence_loss

    config = train_config(shards)
    text = TextTokenizer.train(["a red circle moving left slowly", "a blue square"], 30, 12)
    model_config = dataclasses.replace(config.model, text_size=text.size, codebook_size=CODEBOOK,
                                       max_text_len=12, sizes=[[4, 4]], rates=[8.0])
    data = TokenSequences(shards, text, model_config.vocab, "seen")
    batch = draw_micro_batch(data, config, 0, 0, 0)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = VideoGenerator(model_config).train()
        if checkpointing:
            model.decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            loss = sequence_loss(model, batch, torch.device("cpu"))
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
        grads[-1]["_saved"] = sum(saved)
    assert grads[1].pop("_saved") < grads[0].pop("_saved")  # fewer activations kept for backward
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


RESUME_SCRIPT = textwrap.dedent('''
    """Run by each torchrun rank: resume the run in argv[2] to step 4 (it was trained to 2 by one process)."""
    import sys

    from safetensors.torch import save_file

    from t2v.core import config_io
    from t2v.generator.config import GeneratorTrainConfig
    from t2v.generator.train import Trainer, train

    run = sys.argv[1]
    real_resume = Trainer.resume

    def resume(self):  # the weights each rank holds right after loading
        real_resume(self)
        state = {k: v.detach().float().contiguous().clone() for k, v in self.engine.module.state_dict().items()}
        save_file(state, f"{run}/../resumed{self.rank}.safetensors")

    Trainer.resume = resume
    config = config_io.load(GeneratorTrainConfig, run + "/config.json")
    train(config_io.apply_overrides(config, ["steps=4"]), run, resume=True)
''')


@pytest.mark.distributed
@pytest.mark.parametrize("stage", [pytest.param(0, marks=pytest.mark.slow), 1])
def test_a_one_process_run_resumes_on_two_ranks(shards, tmp_path, stage):
    """A checkpoint of 1 rank resumes on 2 (ZeRO-1: converted to DeepSpeed's universal layout, repartitioned over
    the new ranks): the run goes on from its step, with one metrics line per step and an export of the final
    weights."""
    run = tmp_path / "run"
    train(train_config(shards, steps=2, zero_stage=stage, checkpoint_every=2), run)
    step2 = load_file(str(run / "model.safetensors"))
    run_torchrun(RESUME_SCRIPT, [str(run)], tmp_path)
    for rank in (0, 1):  # both ranks start again from the step-2 weights
        resumed = load_file(str(tmp_path / f"resumed{rank}.safetensors"))
        assert all(torch.equal(resumed[name], step2[name]) for name in step2)
    assert [row["step"] for row in metrics(run)] == [1, 2, 3, 4]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    model = VideoGenerator.from_pretrained(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert {"rank0.json", "rank1.json"} <= {p.name for p in (run / "checkpoints" / "step_00000004").iterdir()}
    assert (run / "checkpoints" / "step_00000002" / "universal" / "zero").is_dir() == (stage > 0)


def test_bf16_training_runs_and_starts_at_the_fp32_loss(shards, tmp_path):
    """DeepSpeed's bf16 mixed precision (fp32 master weights, ZeRO-1) on the CPU: the first step's loss is the fp32
    run's within bf16's rounding of the forward (8 bits of mantissa: a few 1e-3 on a loss near ln 64), the loss
    falls, the export is fp32 and finite."""
    losses = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        train(train_config(shards, steps=4, zero_stage=1, checkpoint_every=4, precision=precision), run)
        losses[precision] = [row["loss"] for row in metrics(run)]
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], abs=0.02)
    assert losses["bf16"][-1] < losses["bf16"][0] - 0.3
    weights = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
