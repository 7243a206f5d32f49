"""tokenizer/train.py as an engine: DDP over 2 gloo ranks equals one process with both ranks' clips, gradient
accumulation equals one larger batch, bf16 autocast, gradient checkpointing, per-rank seeds, and steps that never
read a value back from the device unless they log (tiny model, a few steps, real values)."""
from __future__ import annotations

import dataclasses
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import random_video, run_torchrun, tiny_config, tiny_model
from t2v.core import distributed
from t2v.tokenizer.config import DataConfig, LossConfig, TokenizerTrainConfig
from t2v.tokenizer.data import draw_step
from t2v.tokenizer.train import Trainer

# The 2-rank runs: name → (the config's changes, the steps run). "plain": 2 clips a rank, GAN off; "accum": 2
# micro-batches of 2 clips a step (DDP's no_sync on the first; micro-batches of one clip run other CPU conv kernels,
# whose rounding Adam grew to 2e-5 in 3 steps); "finetune": a clip step, then 2 of the decoder fine-tune (DDP's
# unused-parameter search: the encoder, with Adam momentum from the first step, must not move); "gan": the GAN on from
# the first step (one step: the discriminator's update is exact, the tokenizer's adaptive GAN weight is each rank's
# own, see `equal_batches`).
GAN = {"discriminator_start": 0, "discriminator_channels": 8}  # 8: no GroupNorm group of one channel (below)
CASES = {"plain": ({}, range(3)), "accum": ({"grad_accum": 2}, range(3)),
         "finetune": ({"decoder_steps": 2}, range(7, 10)), "gan": ({"loss": GAN}, range(1))}
# A conv bias before a GroupNorm whose groups hold one channel each has a gradient of exactly zero; Adam's first step
# would turn its float-rounding noise into a whole step of ±lr, so the discriminator compared has 2 channels a group.


def engine_config(index, **changes) -> TokenizerTrainConfig:
    """A tiny tokenizer, 2 clips of 5 16×16 frames a step, the GAN off, a learning rate large enough to move."""
    loss = LossConfig(perceptual_weight=0, discriminator_start=1000, discriminator_channels=4)
    loss = dataclasses.replace(loss, **changes.pop("loss", {}))
    config = TokenizerTrainConfig(
        name="engine", model=tiny_config("fsq"), loss=loss,
        data=DataConfig(index=str(index), train_split="seen", eval_split=None, num_frames=5, size=(16, 16),
                        num_workers=0),
        steps=10, batch_size=2, log_every=1, eval_every=1000, checkpoint_every=1000)
    config.optim.warmup_steps = 1
    config.optim.lr = 1e-3
    return dataclasses.replace(config, **changes)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    state.update({f"disc.{k}": v for k, v in trainer.loss.discriminator.state_dict().items()})
    return {name: tensor.detach().contiguous().clone() for name, tensor in state.items()}


def assert_close(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], prefix: str, atol: float):
    names = [name for name in expected if name.startswith(prefix)]
    assert names
    for name in names:
        torch.testing.assert_close(actual[name], expected[name], atol=atol, rtol=0, msg=name)


def one_process(config: TokenizerTrainConfig, ranks: int, steps: range, tmp_path) -> Trainer:
    """`steps` in this process, each on one batch: the micro-batches of all `ranks` ranks of `config` concatenated
    (micro-batch j of rank r is what rank r·grad_accum + j draws: `Trainer.batch`)."""
    trainer = Trainer(dataclasses.replace(config, grad_accum=1), tmp_path / "single")
    for trainer.step in steps:
        streams = range(ranks * config.grad_accum)
        trainer.train_step(torch.cat([draw_step(trainer.phases, config.seed, stream, trainer.step)
                                      for stream in streams]))
    return trainer


SCRIPT = textwrap.dedent('''
    """Run by each torchrun rank: the CASES of test_tokenizer_engine.py, each a fresh Trainer fed its own batches;
    dumps this rank's final weights per case."""
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[3])
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    from t2v.core import distributed
    from t2v.tokenizer.train import Trainer
    from test_tokenizer_engine import CASES, engine_config, weights

    index, out = sys.argv[1], Path(sys.argv[2])
    for name, (changes, steps) in CASES.items():
        trainer = Trainer(engine_config(index, **changes), out / name)
        assert isinstance(trainer.ddp_model, DistributedDataParallel)
        assert isinstance(trainer.ddp_discriminator, DistributedDataParallel)
        for trainer.step in steps:
            trainer.train_step(*[trainer.batch(trainer.step, micro) for micro in range(trainer.config.grad_accum)])
        save_file(weights(trainer), str(out / f"{name}-rank{trainer.rank}.safetensors"))
    distributed.teardown()
''')


@pytest.mark.distributed
def test_two_ranks_equal_one_process_with_both_ranks_clips(tmp_path, shapes_index, request):
    """DDP's averaged gradients are those of the mean loss over both ranks' clips: every loss term is a mean over
    clips (the discriminator's GroupNorm normalises each clip alone), so 2 ranks end where one process does that
    sees their batches at once, with accumulation too. atol 1e-5, 1% of a step at lr 1e-3: float sums in another
    order, through 3 Adam steps (see the accumulation test)."""
    run_torchrun(SCRIPT, [str(shapes_index), str(tmp_path), str(request.path.parent)], tmp_path, timeout=300)
    for name, (changes, steps) in CASES.items():
        ranks = [load_file(str(tmp_path / f"{name}-rank{rank}.safetensors")) for rank in (0, 1)]
        assert_close(ranks[0], ranks[1], "", atol=0)  # the ranks agree exactly
        single = weights(one_process(engine_config(shapes_index, **changes), 2, steps, tmp_path / name))
        # the GAN case's tokenizer took each rank's own adaptive weight; its discriminator saw the same clips
        assert_close(single, ranks[0], "model." if name != "gan" else "disc.", atol=1e-5)
        initial = weights(Trainer(engine_config(shapes_index, **changes), tmp_path / f"{name}-initial"))
        assert not torch.allclose(initial["model.decoder.conv_out.conv.weight"],
                                  ranks[0]["model.decoder.conv_out.conv.weight"])  # training did move the weights
    after_first = weights(one_process(engine_config(shapes_index, decoder_steps=2), 2, range(7, 8), tmp_path / "ft"))
    # the fine-tune steps left the encoder where the first step put it (in one process its gradients stay None)
    assert_close(after_first, load_file(str(tmp_path / "finetune-rank0.safetensors")), "model.encoder.", atol=1e-5)


def equal_batches(config: TokenizerTrainConfig, tmp_path, steps: int) -> tuple[dict, dict]:
    """The weights after `steps` steps with 2 micro-batches a step, and with their concatenation as one batch."""
    config = dataclasses.replace(config, grad_accum=2)
    accumulated = Trainer(config, tmp_path / "accumulated")
    for accumulated.step in range(steps):
        accumulated.train_step(accumulated.batch(accumulated.step, 0), accumulated.batch(accumulated.step, 1))
    return weights(accumulated), weights(one_process(config, 1, range(steps), tmp_path))


def test_gradient_accumulation_equals_one_batch_twice_as_large(tmp_path, shapes_index):
    """2 micro-batches of 2 clips, each loss counted ½, give the gradients of one batch of 4: the weights after 3
    steps agree to float rounding. atol 1e-5, 1% of a step at lr 1e-3: Adam divides each gradient element by its own
    size, so the rounding of an element near Adam's eps moves it by up to ~1.5e-6 (measured). With the GAN on, the
    discriminator's first step agrees too (its hinge loss is a mean over clips); the tokenizer's adaptive GAN weight
    is a ratio of gradient norms taken per micro-batch, so the tokenizer's own step differs there (as it does between
    DDP ranks)."""
    accumulated, single = equal_batches(engine_config(shapes_index), tmp_path / "plain", steps=3)
    assert_close(single, accumulated, "model.", atol=1e-5)
    accumulated, single = equal_batches(engine_config(shapes_index, loss=GAN), tmp_path / "gan", steps=1)
    assert_close(single, accumulated, "disc.", atol=1e-5)


def test_micro_batches_are_the_batches_of_more_ranks(tmp_path, shapes_index):
    """grad_accum = 1 draws the batches of before (rank, step); micro-batch j of rank r is rank r·k + j's batch."""
    plain = Trainer(engine_config(shapes_index), tmp_path / "plain")
    accumulated = Trainer(engine_config(shapes_index, grad_accum=3), tmp_path / "accumulated")
    assert torch.equal(plain.batch(4), draw_step(plain.phases, 0, 0, 4))
    assert torch.equal(accumulated.batch(4, micro=2), draw_step(plain.phases, 0, 2, 4))
    loader = accumulated.batches(4)
    first = next(loader)
    loader.close()
    assert len(first) == 3 and all(torch.equal(first[j], accumulated.batch(4, j)) for j in range(3))


def test_bf16_autocast_step_is_close_to_fp32(tmp_path, shapes_index):
    """The encoder and decoder compute in bf16, the quantizer and the loss in fp32; the step's loss is within 1% of
    fp32's, its gradient norm within 5%. Why: bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2% per
    value, compounding over the tiny model's ~20 convolutions); the loss is a mean over 7,680 pixels, where the
    errors mostly cancel (measured 0.01%), the gradient norm a sum of squares, where they do less (measured 0.8%)."""
    video = draw_step(Trainer(engine_config(shapes_index), tmp_path / "draw").phases, 0, 0, 0)
    logs, dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(engine_config(shapes_index, precision=precision), tmp_path / precision)
        def note(name):  # a hook that records the dtype of a module's output (of its input: the quantizer's)
            def hook(module, args, out=None):
                dtypes[precision, name] = (args[0] if out is None else out).dtype
            return hook

        hooks = [trainer.model.encoder.register_forward_hook(note("encoder")),
                 trainer.model.quantizer.register_forward_pre_hook(note("quantizer")),
                 trainer.model.decoder.register_forward_hook(note("decoder"))]
        logs[precision] = trainer.host_logs(trainer.train_step(video))
        for hook in hooks:
            hook.remove()
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.model.parameters())
    assert dtypes == {("fp32", "encoder"): torch.float32, ("fp32", "quantizer"): torch.float32,
                      ("fp32", "decoder"): torch.float32, ("bf16", "encoder"): torch.bfloat16,
                      ("bf16", "quantizer"): torch.float32, ("bf16", "decoder"): torch.bfloat16}
    assert logs["bf16"]["loss"] != logs["fp32"]["loss"]  # bf16 did compute
    assert logs["bf16"]["loss"] == pytest.approx(logs["fp32"]["loss"], rel=1e-2)
    assert logs["bf16"]["grad_norm"] == pytest.approx(logs["fp32"]["grad_norm"], rel=5e-2)
    with pytest.raises(ValueError, match="precision"):
        engine_config(shapes_index, precision="fp16")


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path, shapes_index):
    """Recomputed blocks give the very gradients the stored activations do (each block runs its forward twice)."""
    video = random_video(batch=2, frames=5)
    grads = {}
    for checkpointing in (False, True):
        model = tiny_model("fsq").train()
        model.set_gradient_checkpointing(checkpointing)
        calls, block = [], model.encoder.blocks[0]
        block.forward = lambda *args, forward=block.forward: calls.append(1) or forward(*args)
        output = model(video)
        ((output.reconstruction - video).abs().mean() + output.aux_loss).backward()
        grads[checkpointing] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        assert len(calls) == (2 if checkpointing else 1)
    assert grads[True].keys() == grads[False].keys() and grads[True]
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, atol=1e-7, rtol=1e-6, msg=name)

    plain = Trainer(engine_config(shapes_index), tmp_path / "plain")
    checkpointed = Trainer(engine_config(shapes_index, gradient_checkpointing=True), tmp_path / "checkpointed")
    assert checkpointed.model.decoder.checkpointing and not plain.model.decoder.checkpointing
    for trainer in (plain, checkpointed):
        trainer.train_step(trainer.batch(0))
    assert_close(weights(plain), weights(checkpointed), "model.", atol=1e-7)


def test_each_rank_seeds_its_own_randomness(tmp_path, shapes_index, monkeypatch):
    """Once the weights are set, rank r seeds torch with (seed, r): code noise and VQ restarts differ per rank,
    while the weights (seeded by the config's seed alone) and the data draws do not depend on it."""
    draws, models = {}, {}
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "setup", lambda rank=rank: (rank, 2, torch.device("cpu")))
        trainer = Trainer(engine_config(shapes_index), tmp_path / str(rank))
        draws[rank], models[rank] = torch.rand(4), weights(trainer)
        expected = torch.Generator().manual_seed(distributed.rank_seed(0, rank))
        assert torch.equal(draws[rank], torch.rand(4, generator=expected))
    assert not torch.equal(draws[0], draws[1])
    assert_close(models[0], models[1], "", atol=0)


def test_a_step_waits_for_the_device_only_when_it_logs(tmp_path, shapes_index, monkeypatch):
    """No value is read back from the device within a training step (GAN on, 2 micro-batches): every read raises
    here; the logs and the skip guard are read afterwards, in one go."""
    trainer = Trainer(engine_config(shapes_index, grad_accum=2, loss={"discriminator_start": 0}), tmp_path)
    batches = [trainer.batch(0, micro) for micro in range(2)]

    def read(*args, **kwargs):
        raise AssertionError("a host sync inside train_step")

    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            patch.setattr(torch.Tensor, name, read)
        logs = trainer.train_step(*batches)
    values = trainer.host_logs(logs)
    assert {"loss", "l1", "grad_norm", "d_loss", "adaptive_weight", "lr"} <= set(values)
    assert all(isinstance(value, (int, float)) for value in values.values())
    assert values["skipped_steps"] == 0


def test_a_non_finite_step_is_skipped_on_the_device(tmp_path, shapes_index):
    """A NaN in one micro-batch's loss: neither the tokenizer, the discriminator nor their Adam state move, and the
    guard counts the step once settled."""
    trainer = Trainer(engine_config(shapes_index, grad_accum=2, loss={"discriminator_start": 0}), tmp_path)
    trainer.train_step(trainer.batch(0, 0), trainer.batch(0, 1))
    trainer.step += 1
    before = weights(trainer)
    adam = {name: {key: value.clone() for key, value in optimizer.state[param].items()}
            for optimizer, name, param in ((trainer.opt_g, "g", trainer.model.decoder.last_layer),
                                           (trainer.opt_d, "d", next(trainer.loss.discriminator.parameters())))}
    poisoned = trainer.batch(1, 1).clone()
    poisoned[0, 0, 0, 0, 0] = float("nan")
    logs = trainer.host_logs(trainer.train_step(trainer.batch(1, 0), poisoned))
    assert logs["skipped_steps"] == 1 and trainer.guard.in_a_row == 1
    assert_close(before, weights(trainer), "", atol=0)
    for optimizer, name, param in ((trainer.opt_g, "g", trainer.model.decoder.last_layer),
                                   (trainer.opt_d, "d", next(trainer.loss.discriminator.parameters()))):
        for key, value in adam[name].items():
            assert torch.equal(optimizer.state[param][key], value), (name, key)
    trainer.step += 1
    trainer.train_step(trainer.batch(2, 0), trainer.batch(2, 1))
    trainer.settle()
    assert trainer.guard.in_a_row == 0 and trainer.guard.total == 1
    assert not torch.equal(before["model.decoder.conv_out.conv.weight"],
                           trainer.model.decoder.last_layer.detach().contiguous())
