"""tokenizer/train.py: run directory contents, exact resume, schedules and batches (tiny model, a few steps)."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config
from t2v.tokenizer.data import ClipDataset, draw_batch
from t2v.tokenizer.config import LossConfig
from t2v.tokenizer.model import VideoTokenizer
from t2v.core.lr_schedule import lr_factor
from t2v.core.state_io import load_state
from t2v.tokenizer.layers import Upsample
from t2v.tokenizer.train import Trainer, inflate_for_clips, schedule_factor, tokenizer_lr, train
from t2v.tokenizer.config import DataConfig, OptimConfig, TokenizerTrainConfig

COMPARED = ("loss", "l1", "grad_norm", "lr", "d_loss", "adversarial", "adaptive_weight")


def train_config(index, quantizer: str = "fsq", steps: int = 4) -> TokenizerTrainConfig:
    """4 steps of a tiny tokenizer; the GAN (and the discriminator step) is on from the third step."""
    return TokenizerTrainConfig(
        name="test", model=tiny_config(quantizer),
        loss=LossConfig(perceptual_weight=0, discriminator_start=2, discriminator_channels=4),
        data=DataConfig(index=str(index), train_split="seen", eval_split="heldout", num_frames=5, size=(16, 16),
                        eval_clips=2),
        steps=steps, batch_size=2, log_every=1, eval_every=1000, checkpoint_every=2, num_samples=1)


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_losses(expected: list[dict], actual: list[dict], steps=(3, 4)) -> None:
    by_step = {row["step"]: row for row in actual}
    for row in expected:
        if row["step"] in steps:
            other = by_step[row["step"]]
            keys = [key for key in COMPARED if key in row]
            assert keys == [key for key in COMPARED if key in other]
            assert "loss" in keys and ("d_loss" in keys) == (row["step"] >= 3)
            for key in keys:
                assert other[key] == pytest.approx(row[key], rel=1e-6, abs=1e-7), (row["step"], key)


def assert_same_weights(run_a, run_b) -> None:
    a, b = load_file(str(run_a / "model.safetensors")), load_file(str(run_b / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=1e-6, msg=name)


@pytest.fixture(scope="module")
def uninterrupted(shapes_index, tmp_path_factory):
    """4-step runs without interruption, one per quantizer, made on first use."""
    runs = {}

    def get(quantizer: str):
        if quantizer not in runs:
            run_dir = tmp_path_factory.mktemp(f"run-{quantizer}")
            result = train(train_config(shapes_index, quantizer), run_dir)
            runs[quantizer] = (run_dir, result)
        return runs[quantizer]

    return get


def test_run_directory_contents(uninterrupted, shapes_index):
    run_dir, result = uninterrupted("fsq")
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.jsonl", "checkpoints", "samples"} <= names
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest", "step_00000002",
                                                                            "step_00000004"]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    samples = sorted((run_dir / "samples").glob("*.mp4"))
    assert [p.name for p in samples] == ["step_00000004.mp4"] and samples[0].stat().st_size > 0
    assert not [p for p in run_dir.rglob(".*") if "tmp" in p.name]  # no temp files left

    config = json.loads((run_dir / "config.json").read_text())
    assert config["steps"] == 4 and config["model"]["channels"] == [8, 8, 16, 16]
    assert config["data"]["index"] == str(shapes_index)

    rows = metrics(run_dir)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) for row in rows)
    assert "d_loss" not in rows[1] and "d_loss" in rows[2]  # discriminator_start=2: the GAN starts at step 3
    assert rows[3]["eval_clips"] == 2 and rows[3]["eval_psnr"] == pytest.approx(result.psnr)
    assert 0 < result.psnr < 100 and -1 <= result.ssim <= 1 and result.lpips is None

    model = VideoTokenizer.from_pretrained(run_dir)
    assert model.config == tiny_config("fsq")
    state = load_state(run_dir / "checkpoints" / "step_00000004", "state")
    assert state["step"] == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model"][name].contiguous()), name


@pytest.mark.parametrize("quantizer", ["fsq", "vq"])  # VQ: dead-code restarts draw from the torch RNG
def test_resume_after_finished_run_gives_the_same_losses(uninterrupted, shapes_index, tmp_path, quantizer):
    """Extend a finished 2-step run to 4 steps: its final-step evaluation must not shift the training RNG."""
    reference, _ = uninterrupted(quantizer)
    train(train_config(shapes_index, quantizer, steps=2), tmp_path)
    assert [row["step"] for row in metrics(tmp_path)] == [1, 2]
    train(train_config(shapes_index, quantizer, steps=4), tmp_path, resume=True)
    rows = metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert_same_losses(metrics(reference), rows, steps=(1, 2, 3, 4))
    assert_same_weights(reference, tmp_path)


def test_resume_after_kill_truncates_metrics_and_continues_exactly(uninterrupted, shapes_index, tmp_path,
                                                                   monkeypatch):
    """Killed during step 4 (after step 3 was logged, checkpoint at 2): resume re-runs 3 and 4 exactly."""
    reference, _ = uninterrupted("fsq")
    real_step = Trainer.train_step

    def killed(self, video):
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self, video)

    monkeypatch.setattr(Trainer, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(train_config(shapes_index, steps=4), tmp_path)
    monkeypatch.undo()
    assert [row["step"] for row in metrics(tmp_path)] == [1, 2, 3]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000002"

    train(train_config(shapes_index, steps=4), tmp_path, resume=True)
    rows = metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # step 3 logged once: the stale line was dropped
    assert_same_losses(metrics(reference), rows)
    assert_same_weights(reference, tmp_path)


def test_resume_with_gradient_accumulation_gives_the_same_losses(shapes_index, tmp_path):
    """2 micro-batches a step (one loader and data worker each), the GAN on from step 3: a run resumed at step 2
    continues with the losses and weights of the uninterrupted one (micro-batches are a function of the step)."""
    config = dataclasses.replace(train_config(shapes_index), grad_accum=2, batch_size=1)
    train(config, tmp_path / "whole")
    train(dataclasses.replace(config, steps=2), tmp_path / "resumed")
    train(config, tmp_path / "resumed", resume=True)
    assert_same_losses(metrics(tmp_path / "whole"), metrics(tmp_path / "resumed"), steps=(1, 2, 3, 4))
    assert_same_weights(tmp_path / "whole", tmp_path / "resumed")


def test_resume_without_checkpoint_fails(shapes_index, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(train_config(shapes_index), tmp_path, resume=True)


def test_lr_schedule():
    config = OptimConfig(warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(step, config.warmup_steps, 10, config.min_lr_ratio) for step in range(4)] == pytest.approx(
        [0.25, 0.5, 0.75, 1.0])
    assert lr_factor(4, config.warmup_steps, 10, config.min_lr_ratio) == pytest.approx(1.0)
    assert lr_factor(7, config.warmup_steps, 10, config.min_lr_ratio) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(10, config.warmup_steps, 10, config.min_lr_ratio) == pytest.approx(0.1)
    assert lr_factor(50, config.warmup_steps, 10, config.min_lr_ratio) == pytest.approx(0.1)


def test_every_phase_has_its_own_schedule():
    config = TokenizerTrainConfig(steps=20, image_steps=6, decoder_steps=4,
                                  optim=OptimConfig(warmup_steps=2, min_lr_ratio=0.1))
    expected = [lr_factor(step, 2, length, 0.1) for length in (6, 10, 4) for step in range(length)]
    assert [schedule_factor(step, config) for step in range(20)] == pytest.approx(expected)  # warmup again each time
    no_image = dataclasses.replace(config, image_steps=0)
    assert [schedule_factor(step, no_image) for step in range(16)] == pytest.approx(
        [lr_factor(step, 2, 16, 0.1) for step in range(16)])  # adding a phase does not change the ones before it


def test_clip_phase_has_its_own_peak_learning_rate():
    config = TokenizerTrainConfig(steps=20, image_steps=6, decoder_steps=4, optim=OptimConfig(lr=3e-4, clip_lr=1e-4))
    assert [tokenizer_lr(step, config) for step in (0, 5, 6, 15, 16, 19)] == [3e-4, 3e-4, 1e-4, 1e-4, 3e-4, 3e-4]
    no_image = dataclasses.replace(config, image_steps=0)
    assert tokenizer_lr(6, no_image) == 3e-4  # a run of clips only has no clip phase of its own


def test_first_clip_step_inflates_the_image_weights(shapes_index, tmp_path):
    config = dataclasses.replace(train_config(shapes_index), image_steps=1)
    trainer = Trainer(config, tmp_path)
    trainer.train_step(trainer.batch(0))
    frame = trainer.batch(0)[:, :, :1]
    with torch.no_grad():
        before = trainer.model(frame).reconstruction
    upsampling = [m for m in trainer.model.modules() if isinstance(m, Upsample) and m.temporal]
    weight = upsampling[0].time_conv.conv.weight
    assert not torch.equal(weight[0::2], weight[1::2])  # the image step trained one half only
    trained = weight[1::2].sum(dim=2)
    assert trainer.opt_g.state[weight]
    inflate_for_clips(trainer.model, trainer.opt_g)
    assert torch.equal(weight[0::2], weight[1::2]) and torch.allclose(weight[1::2, :, -1], trained)
    assert not weight[:, :, :-1].any()  # every temporal tap but the current frame's is zero
    assert weight not in trainer.opt_g.state  # its Adam state starts afresh
    with torch.no_grad():  # a single frame is coded exactly as before
        assert torch.allclose(trainer.model(frame).reconstruction, before, atol=1e-5)
    still = frame.expand(-1, -1, 5, -1, -1)  # a still clip: every frame decodes like the first
    with torch.no_grad():
        clip = trainer.model(still).reconstruction
    assert torch.allclose(clip, clip[:, :, :1].expand_as(clip), atol=1e-4)


def test_decoder_fine_tune_freezes_the_encoder(shapes_index, tmp_path):
    base = train_config(shapes_index)  # steps 2 and 3 are the fine-tune; the GAN is on there only, at its own weight
    config = dataclasses.replace(base, decoder_steps=2, decoder_adversarial_weight=0.5,
                                 loss=dataclasses.replace(base.loss, adversarial_weight=0.0))
    trainer = Trainer(config, tmp_path)
    snapshot = lambda module: {name: value.clone() for name, value in module.state_dict().items()}  # noqa: E731
    video = trainer.batch(0)
    encoder, decoder = snapshot(trainer.model.encoder), snapshot(trainer.model.decoder)
    trainer.step = 1
    assert "d_loss" not in trainer.train_step(video)  # step 1: encoder and decoder both learn, no GAN
    trainer.step = 2
    assert any(not torch.equal(value, trainer.model.encoder.state_dict()[name]) for name, value in encoder.items())
    encoder, decoder = snapshot(trainer.model.encoder), snapshot(trainer.model.decoder)
    logs = trainer.train_step(video)  # step 2: the decoder fine-tune, GAN on at 0.5
    assert "d_loss" in logs and "adversarial" in logs
    assert all(parameter.grad is None for parameter in trainer.model.encoder.parameters())
    assert all(torch.equal(value, trainer.model.encoder.state_dict()[name]) for name, value in encoder.items())
    assert any(not torch.equal(value, trainer.model.decoder.state_dict()[name]) for name, value in decoder.items())


def test_decoder_fine_tune_with_code_noise(shapes_index, tmp_path):
    config = dataclasses.replace(train_config(shapes_index), decoder_steps=2, decoder_code_noise=0.5)
    trainer = Trainer(config, tmp_path)
    video = trainer.batch(0)
    trainer.model.eval()
    clean = trainer.model(video, train_encoder=False).reconstruction
    noisy = trainer.model(video, train_encoder=False, code_noise=0.5).reconstruction
    assert not torch.allclose(clean, noisy)  # the decoder saw other codes
    with pytest.raises(ValueError, match="train_encoder=False"):
        trainer.model(video, code_noise=0.5)
    trainer.step = 2
    assert trainer.train_step(video)["loss"] > 0


def test_draw_batch_is_a_function_of_seed_rank_step(shapes_index):
    dataset = ClipDataset(shapes_index, num_frames=5, size=(16, 16), crop="random", split="seen", seed=0)
    first = draw_batch(dataset, 2, seed=0, rank=0, step=0)
    assert first.shape == (2, 3, 5, 16, 16) and first.min() >= -1 and first.max() <= 1
    draw_batch(dataset, 2, seed=0, rank=0, step=1)
    assert torch.equal(draw_batch(dataset, 2, seed=0, rank=0, step=0), first)
    assert not torch.equal(draw_batch(dataset, 2, seed=0, rank=1, step=0), first)
    assert not torch.equal(draw_batch(dataset, 2, seed=0, rank=0, step=1), first)
    assert not torch.equal(draw_batch(dataset, 2, seed=1, rank=0, step=0), first)


def test_image_phase_trains_on_frames_then_clips(shapes_index, tmp_path):
    config = dataclasses.replace(train_config(shapes_index), image_steps=2, image_batch_size=3)
    trainer = Trainer(config, tmp_path)
    shapes = [tuple(trainer.batch(step).shape) for step in (0, 1, 2, 3)]
    assert shapes == [(3, 3, 1, 16, 16)] * 2 + [(2, 3, 5, 16, 16)] * 2
    assert torch.equal(trainer.batch(1), trainer.batch(1)) and (trainer.batch(1) > -0.5).any()  # objects drawn
    train(config, tmp_path / "run")
    assert [row["step"] for row in metrics(tmp_path / "run")] == [1, 2, 3, 4]


def test_train_config_checks():
    with pytest.raises(ValueError, match="steps"):
        TokenizerTrainConfig(steps=0)
    with pytest.raises(ValueError, match="eval_every"):
        TokenizerTrainConfig(eval_every=0)
    with pytest.raises(ValueError, match="image_steps"):
        TokenizerTrainConfig(steps=10, image_steps=10)
    with pytest.raises(ValueError, match="decoder_adversarial_weight"):
        TokenizerTrainConfig(decoder_adversarial_weight=-1.0)
    with pytest.raises(ValueError, match="decoder_code_noise"):
        TokenizerTrainConfig(decoder_code_noise=1.0)
    with pytest.raises(ValueError, match="decoder_steps"):
        TokenizerTrainConfig(steps=10, image_steps=4, decoder_steps=6)
    with pytest.raises(ValueError, match="grad_accum"):
        TokenizerTrainConfig(grad_accum=0)
    with pytest.raises(ValueError, match="precision"):
        TokenizerTrainConfig(precision="fp16")
