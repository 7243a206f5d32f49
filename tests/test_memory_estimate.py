"""The dry runs' memory estimates (generator/memory.py, tokenizer/memory.py, core/memory.py) against the real thing:
the generator's parameter count exactly, its activation formula within 5% of what autograd keeps on the CPU (bf16
and fp32, with and without gradient checkpointing), its ZeRO model states against DeepSpeed's own estimators; the
tokenizer's fake-tensor measurement equal to a real one; the CUDA autocast policy; the shards' numbers; the CLI."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from conftest import tiny_config
from t2v.core.memory import SavedTensors, cuda_autocast_on_cpu
from t2v.generator.config import GeneratorConfig, GeneratorDataConfig, GeneratorTrainConfig
from t2v.generator.memory import estimate as estimate_generator
from t2v.generator.memory import model_state_bytes, resolve
from t2v.generator.model import VideoGenerator
from t2v.tokenizer.config import LossConfig
from t2v.tokenizer.losses import TokenizerLoss
from t2v.tokenizer.memory import measure
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.shards import ShardWriter


def generator_config(precision: str = "bf16", batch: int = 4, **model) -> GeneratorTrainConfig:
    """A 2-layer generator over 3 latent frames of 6×6 codes (GQA: 2 key/value heads for 4)."""
    values = dict(layers=2, hidden=128, heads=4, kv_heads=2, intermediate=352, codebook_size=256, sizes=[[6, 6]])
    return GeneratorTrainConfig(model=GeneratorConfig(**{**values, **model}), batch_size=batch, precision=precision,
                                data=GeneratorDataConfig(window=3, text_vocab_size=40, max_text_len=8))


@pytest.mark.parametrize("levels", [[], [4, 4, 4, 4]])
def test_generator_parameter_count_is_exact(levels):
    config = generator_config(code_levels=levels)
    memory = estimate_generator(config)
    model = VideoGenerator(memory.model)  # the vocabulary the estimate resolved: text pieces from data
    assert memory.model.text_size == 40 and memory.model.max_text_len == 8
    assert memory.parameters == model.num_parameters()
    assert memory.largest_layer == max(sum(p.numel() for p in module.parameters(recurse=False))
                                       for module in model.modules())


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_generator_activation_formula_is_within_5_percent_of_what_autograd_keeps(precision, checkpointing):
    config = generator_config(precision)
    memory = estimate_generator(config)
    torch.manual_seed(0)
    model = VideoGenerator(memory.model).to(torch.bfloat16 if precision == "bf16" else torch.float32).train()
    if checkpointing:
        model.decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    vocab, (t, h, w) = memory.model.vocab, (3, 6, 6)
    length, start = vocab.sequence_len(t, h, w), vocab.prefix_len - 1  # the loss from BOV on, as the trainer's
    assert length == memory.sequence.ids and length - start == memory.sequence.loss_ids
    ids = torch.randint(vocab.video_start, vocab.video_end, (config.batch_size, length))
    labels = torch.randint(vocab.codebook_size, (config.batch_size, length - start))
    with SavedTensors(exclude=model.parameters()) as saved:
        loss = model(ids, vocab.positions(t, h, w), logits_from=start, labels=labels)
    measured = saved.total  # before the backward frees them
    loss.backward()
    parts = memory.activations(checkpointing)
    kept = parts["layers"] + parts["output"]  # the recomputed layer and the loss chunk are not kept
    assert kept == pytest.approx(measured, rel=0.05)


def test_zero_model_states_match_deepspeeds_estimators():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    params, largest = 195_578_880, 61_445_376
    for gpus in (1, 8, 16):
        _, stage2 = estimate_zero2_model_states_mem_needs(params, gpus, 1, cpu_offload=False)
        _, stage3, _ = estimate_zero3_model_states_mem_needs(params, largest, gpus, 1, cpu_offload=False,
                                                             cpu_offload_params=False)
        assert model_state_bytes(params, largest, 2, gpus, bf16=True) == stage2
        assert model_state_bytes(params, largest, 3, gpus, bf16=True) == stage3
        # stage 1 keeps what stage 2 partitions of the bf16 gradients whole; stage 0 the fp32 parts too
        assert model_state_bytes(params, largest, 1, gpus, True) == stage2 + 2 * params - 2 * params // gpus
    assert model_state_bytes(params, largest, 0, 8, True) == 20 * params


def test_sequence_and_vocabulary_come_from_the_shards_when_they_exist(tmp_path):
    writer = ShardWriter(tmp_path / "shards", 64)
    for shape in ((3, 4, 4), (5, 4, 6), (2, 4, 4)):
        writer.add(np.zeros(shape, dtype=np.int64), {"caption": "a clip", "split": "train", "fps": 8.0})
    writer.close({"fps": 8.0})
    config = dataclasses.replace(generator_config(), data=GeneratorDataConfig(shards=str(tmp_path / "shards")))
    model, sequence = resolve(config)
    assert model.codebook_size == 64 and model.sizes == [[4, 4], [4, 6]]
    assert sequence.latent_frames == 5 and sequence.grid == (4, 6)  # the longest clip, the largest grid
    assert any(f"from the shards in {tmp_path / 'shards'}" in note for note in sequence.notes)
    unknown = dataclasses.replace(generator_config(), data=GeneratorDataConfig(window=0))
    memory = estimate_generator(unknown)
    assert memory.activations(False) is None and "set data.window=N" in memory.format()


def tokenizer_parts(seed: int = 0) -> tuple[VideoTokenizer, TokenizerLoss]:
    """A tiny tokenizer and its loss with LPIPS (random backbone) and the GAN on from step 0."""
    torch.manual_seed(seed)
    warnings.filterwarnings("ignore", "The parameter 'pretrained'|Arguments other than a weight", UserWarning)
    loss = LossConfig(perceptual_weight=0.1, lpips_random_backbone=True, adversarial_weight=0.1,
                      discriminator_start=0, discriminator_channels=8)
    return VideoTokenizer(tiny_config()), TokenizerLoss(loss, float_logs=False)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_tokenizer_measurement_on_fake_tensors_equals_a_real_one(checkpointing):
    batch, frames, size = 2, 5, (32, 32)
    measured = measure(*tokenizer_parts(), batch, frames, size, step=0, bf16=False)
    model, loss = tokenizer_parts()
    model.set_gradient_checkpointing(checkpointing)
    parameters = [*model.parameters(), *loss.parameters()]
    video = torch.rand(batch, 3, frames, *size) * 2 - 1
    with SavedTensors(exclude=parameters) as saved:
        output = model(video)
        total, _ = loss.generator_loss(video, output.reconstruction.float(), output.aux_loss,
                                       model.decoder.last_layer, 0)
    with SavedTensors(exclude=parameters) as discriminator:
        d_loss, _ = loss.discriminator_loss(video, output.reconstruction.float())
    kept, kept_by_discriminator = saved.total, discriminator.total  # before the backward frees them
    (total + d_loss).backward()
    if checkpointing:  # derived from the blocks' shares of the whole forward: a block input saved elsewhere too
        assert kept == pytest.approx(measured.block_inputs, rel=0.01)
    else:
        assert kept == measured.full
    assert kept_by_discriminator == measured.discriminator > 0
    assert measured.full > measured.checkpointed > measured.block_inputs


def test_cuda_autocast_on_cpu_follows_cudas_policy():
    with FakeTensorMode():
        conv = torch.nn.Conv3d(4, 4, 3, padding=1)
        conv.weight, conv.bias = (torch.nn.Parameter(torch.empty_like(p)) for p in (conv.weight, conv.bias))
        x = torch.empty(1, 4, 3, 8, 8)
        with cuda_autocast_on_cpu():
            y = conv(x)
            normed = F.group_norm(y, 2)
            assert y.dtype == torch.bfloat16 and normed.dtype == torch.float32  # conv low, group_norm fp32
            assert F.silu(y).dtype == torch.bfloat16  # the rest keeps its input's dtype
            with torch.autocast("cpu", enabled=False):  # a region the model turns autocast off in stays off
                assert conv(x).dtype == torch.float32 and F.group_norm(y, 2).dtype == torch.bfloat16


def test_dry_runs_print_the_estimates(monkeypatch, capsys, tmp_path):
    from conftest import run_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "3")
    code, out, err = run_main(["generator", "train", "shapes", "--dry-run", "--out", "runs/g"], monkeypatch, capsys)
    assert code == 0, err
    header = next(line.split() for line in out.splitlines() if line.strip().startswith("ZeRO stage"))
    assert header == ["ZeRO", "stage", "1", "GPU", "3", "GPUs", "8", "GPUs"]  # the launch's WORLD_SIZE too
    assert "0 (config)" in out and "activations of a micro-batch" in out
    monkeypatch.delenv("WORLD_SIZE")
    code, out, err = run_main(["tokenizer", "train", "shapes", "--dry-run", "--set", "batch_size=2"], monkeypatch,
                              capsys)
    assert code == 0, err
    assert "one 17x64x64 clip" in out and "micro-batch: 2 clips" in out and "image phase: 16 frames" in out
    assert not (tmp_path / "runs").exists()
