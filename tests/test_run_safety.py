"""Run directories with one owner and state that loads without code: the lock, the fresh-run refusal, stale temp
entries, pruning by step, metrics that stay valid JSON, pickle payloads that never run, NaN/inf steps skipped."""
from __future__ import annotations

import builtins
import dataclasses
import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_main, tiny_config, tiny_shards
from t2v.core import checkpoint as ckpt
from t2v.tokenizer.losses import TokenizerLoss
from t2v.tokenizer.config import LossConfig
from t2v.core.runlog import read_metrics
from t2v.core.state_io import load_state, save_state
from t2v.tokenizer.train import train
from t2v.tokenizer.config import DataConfig, TokenizerTrainConfig


def tokenizer_config(index, steps: int = 4, **overrides) -> TokenizerTrainConfig:
    values = dict(name="safety", model=tiny_config("fsq"),
                  loss=LossConfig(perceptual_weight=0, discriminator_start=2, discriminator_channels=4),
                  data=DataConfig(index=str(index), train_split="seen", eval_split="heldout", num_frames=5, size=(16,
                                  16), eval_clips=2, num_workers=0),
                  steps=steps, batch_size=2, log_every=1, eval_every=1000, checkpoint_every=2, num_samples=1)
    return TokenizerTrainConfig(**{**values, **overrides})


def strict_records(path) -> list[dict]:
    """metrics.jsonl parsed as strict JSON (bare NaN/Infinity are errors)."""
    def reject(constant):
        raise ValueError(f"not JSON: {constant}")
    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


def snapshot(directory) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(shapes_index, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    train(tokenizer_config(shapes_index), run_dir)
    return run_dir


# 1. One owner per run directory ---------------------------------------------------------------------------------
HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from t2v.core.rundir import claim
    held = claim(sys.argv[1], resume=True)
    print("holding", flush=True)
    time.sleep(60)
""")


def test_a_second_run_into_a_locked_run_directory_is_refused(finished_run, shapes_index, tmp_path, monkeypatch,
                                                             capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)  # this test resumes it: the shared run stays as it is
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = snapshot(run_dir)
        config = tmp_path / "config.json"
        config.write_text(json.dumps(ckpt_free_dict(tokenizer_config(shapes_index, steps=6))))
        code, _, err = run_main(["tokenizer", "train", str(config), "--resume", str(run_dir)], monkeypatch, capsys)
        assert code != 0 and err.count("\n") == 1 and "in use by another run" in err
        assert f"pid {holder.pid}" in err  # names the holder
        assert snapshot(run_dir) == before
    finally:
        holder.kill()
        holder.wait()
    train(tokenizer_config(shapes_index, steps=6), run_dir, resume=True)  # a dead holder's lock is gone


def ckpt_free_dict(config: TokenizerTrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def test_a_fresh_run_into_a_used_run_directory_is_refused(finished_run, shapes_index, monkeypatch, capsys, tmp_path):
    before = snapshot(finished_run)
    with pytest.raises(FileExistsError, match="already holds a run.*--resume"):
        train(tokenizer_config(shapes_index), finished_run)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ckpt_free_dict(tokenizer_config(shapes_index))))
    code, _, err = run_main(["tokenizer", "train", str(config), "--out", str(finished_run)], monkeypatch, capsys)
    assert code != 0 and err.startswith("Error:") and err.count("\n") == 1 and "already holds a run" in err
    assert snapshot(finished_run) == before


def test_a_training_split_with_no_readable_file_is_one_line_and_leaves_no_run_directory(tmp_path, monkeypatch,
                                                                                        capsys):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    index = tmp_path / "index.jsonl"
    index.write_text("".join(json.dumps({"path": str(tmp_path / "broken.mp4"), "caption": "x", "split": split}) + "\n"
                             for split in ("seen", "heldout")))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ckpt_free_dict(tokenizer_config(index))))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["tokenizer", "train", str(config)], monkeypatch, capsys)
    assert code != 0 and "could not be read" in err and "t2v data check" in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [err.splitlines()[-1]]
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_stale_temp_entries_are_removed_and_metrics_survive_a_cut_line(finished_run, shapes_index, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    stale = [run_dir / ".model.safetensors.x1.tmp", run_dir / "checkpoints" / ".step_00000004.ab.tmp",
             run_dir / "checkpoints" / ".step_00000002.old", run_dir / "samples" / ".step_00000004.mp4.cd.tmp"]
    for path in stale:
        path.mkdir() if "step_0" in path.name and "mp4" not in path.name else path.write_bytes(b"half")
    with open(run_dir / "metrics.jsonl", "a") as file:
        file.write('{"step": 5, "lo')  # a kill cut this line short
    train(tokenizer_config(shapes_index, steps=6), run_dir, resume=True)
    assert not any(path.exists() for path in stale)
    assert [row["step"] for row in strict_records(run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_a_damaged_metrics_line_before_the_end_names_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 is not valid JSON"):
        read_metrics(path)


def test_pruning_keeps_the_newest_by_step_number_up_to_this_step(tmp_path):
    for step in (9, 10, 100):
        ckpt.write_checkpoint(tmp_path, step, {"step": step}, [{}])
    ckpt.commit(tmp_path, 10, keep=1)  # step_100: written by a killed attempt after the checkpoint resumed
    assert sorted(ckpt.checkpoint_steps(tmp_path)) == [10]
    assert ckpt.latest_checkpoint(tmp_path).name == "step_00000010"


# 2. No pickle on any load path ----------------------------------------------------------------------------------
class Payload:
    """Unpickling this runs code: it writes `marker`."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_state_files_hold_no_pickle_and_roundtrip_exactly(tmp_path):
    state = {"step": 3, "model": {"w": torch.randn(2, 3)}, "opt": {"state": {0: {"step": torch.tensor(2.0)}},
                                                                    "param_groups": [{"betas": (0.9, 0.99)}]},
             "nan": float("nan"), "rng": ckpt.rng_state()}
    save_state(state, tmp_path, "s")
    loaded = load_state(tmp_path, "s")
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert list(loaded["opt"]["state"]) == [0] and loaded["opt"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert math.isnan(loaded["nan"])
    ckpt.set_rng_state(loaded["rng"])
    first = torch.rand(3)
    ckpt.set_rng_state(state["rng"])
    assert torch.equal(first, torch.rand(3))


def test_a_pickle_payload_in_a_tokenizer_checkpoint_never_runs(finished_run, shapes_index, tmp_path):
    import shutil

    marker = tmp_path / "ran"
    for name in ("state.safetensors", "rng_rank0.safetensors", "state.json"):
        run_dir = tmp_path / name
        shutil.copytree(finished_run, run_dir)
        latest = ckpt.latest_checkpoint(run_dir)
        torch.save(Payload(marker), latest / name)  # a pickle where the state was
        torch.save(Payload(marker), latest / "state.pt")  # and where earlier versions kept it
        with pytest.raises(ValueError, match=f"{name}.*damaged"):
            train(tokenizer_config(shapes_index, steps=6), run_dir, resume=True)
        assert not marker.exists()


def test_a_checkpoint_without_its_keys_is_one_line(finished_run, shapes_index, tmp_path, monkeypatch, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    state = load_state(latest, "state")
    del state["model"]
    save_state(state, latest, "state")
    code, _, err = run_main(["tokenizer", "train", "shapes", "--resume", str(run_dir)], monkeypatch, capsys)
    assert code != 0 and err.count("\n") == 1 and "lacks model" in err and str(latest) in err


# 3. NaN / inf --------------------------------------------------------------------------------------------------
def poison_loss(monkeypatch, bad_steps):
    """The generator-side loss of the tokenizer becomes NaN at the (0-based) steps in `bad_steps`."""
    real = TokenizerLoss.generator_loss

    def generator_loss(self, video, reconstruction, aux_loss, last_layer, step, *args):
        loss, logs = real(self, video, reconstruction, aux_loss, last_layer, step, *args)
        return (loss * float("nan"), logs) if step in bad_steps else (loss, logs)

    monkeypatch.setattr(TokenizerLoss, "generator_loss", generator_loss)


def test_a_nan_step_of_the_tokenizer_is_skipped_and_logged(shapes_index, tmp_path, monkeypatch, capsys):
    poison_loss(monkeypatch, {1})
    train(tokenizer_config(shapes_index, checkpoint_every=1, keep_checkpoints=0), tmp_path)
    rows = strict_records(tmp_path / "metrics.jsonl")
    assert [row["skipped_steps"] for row in rows] == [0, 1, 1, 1] and rows[1]["grad_norm"] is None
    before, after = (load_state(ckpt.checkpoint_dir(tmp_path, step), "state")["model"] for step in (1, 2))
    assert all(torch.equal(before[name], after[name]) for name in before)  # step 2 changed no weight
    assert all(torch.isfinite(t).all() for t in load_file(str(tmp_path / "model.safetensors")).values())
    assert "skipped 1 steps with a NaN or inf" in capsys.readouterr().out


def test_nan_steps_in_a_row_stop_the_tokenizer_with_one_line(shapes_index, tmp_path, monkeypatch, capsys):
    poison_loss(monkeypatch, set(range(2, 100)))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ckpt_free_dict(tokenizer_config(shapes_index, steps=8, max_skipped_steps=2))))
    code, _, err = run_main(["tokenizer", "train", str(config), "--out", str(tmp_path / "run")], monkeypatch, capsys)
    errors = [line for line in err.splitlines() if "Error" in line]
    assert code != 0 and len(errors) == 1 and errors[0].startswith("Error: training diverged")
    assert "3 steps in a row up to step 5" in err and "optim.lr" in err
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    strict_records(tmp_path / "run" / "metrics.jsonl")


def test_non_finite_weights_are_never_saved(shapes_index, tmp_path, monkeypatch):
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("inf"))  # an update that overflowed
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(FloatingPointError, match="NaN or inf values.*nothing was saved"):
        train(tokenizer_config(shapes_index), tmp_path)
    assert not (tmp_path / "model.safetensors").exists() and ckpt.checkpoint_steps(tmp_path) == {}


@pytest.mark.parametrize("stage", [0, 2])
def test_nan_steps_of_the_generator_are_skipped_then_stop_the_run(generator_shards, tmp_path, monkeypatch, stage):
    from t2v.generator.train import Trainer, train as train_generator

    real_loss = Trainer.loss

    def loss(self, batch):
        value = real_loss(self, batch)
        return value * float("nan") if self.step in {1} or self.step >= 4 else value

    monkeypatch.setattr(Trainer, "loss", loss)
    config = generator_config(generator_shards, stage)
    with pytest.raises(FloatingPointError, match="3 steps in a row up to step 7"):
        train_generator(config, tmp_path)
    rows = strict_records(tmp_path / "metrics.jsonl")
    assert [row["skipped_steps"] for row in rows if "loss" in row] == [0, 1, 1, 1, 2, 3]
    assert rows[1]["loss"] is None
    exported = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in exported.values())
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000006"  # skipped steps: finite


@pytest.fixture(scope="module")
def generator_shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("tokens") / "shards", clips=16)


def generator_config(shards, stage: int = 0, steps: int = 10):
    from t2v.generator.config import GeneratorConfig
    from t2v.generator.config import GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig

    return GeneratorTrainConfig(
        name="nan", model=GeneratorConfig(layers=1, hidden=32, heads=2, kv_heads=2, intermediate=64),
        data=GeneratorDataConfig(shards=str(shards), train_split="seen", eval_split="heldout", text_vocab_size=64,
                                 max_text_len=12),
        optim=GeneratorOptimConfig(lr=5e-3, warmup_steps=2), steps=steps, batch_size=2, grad_accum=1,
        zero_stage=stage, log_every=1, checkpoint_every=2, max_skipped_steps=2)


@pytest.mark.parametrize("target", ["rank0", "mp_rank_00_model_states.pt", "optim_states.pt"])
def test_a_pickle_payload_in_a_generator_checkpoint_never_runs(generator_shards, tmp_path, target):
    from t2v.generator.train import train as train_generator

    stage = 1 if target == "optim_states.pt" else 0
    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    train_generator(generator_config(generator_shards, stage, steps=2), run_dir)
    latest = ckpt.latest_checkpoint(run_dir, "rank0.json")
    if target == "rank0":
        torch.save(Payload(marker), latest / "rank0.safetensors")
        torch.save(Payload(marker), latest / "rank0.pt")
        match = "rank0.safetensors.*damaged"
    else:
        [path] = [p for p in latest.glob("*.pt") if p.name.endswith(target)]
        torch.save({"module": Payload(marker)}, path)
        match = f"{path.name} is damaged or holds objects other than tensors"
    with pytest.raises(ValueError, match=match):
        train_generator(generator_config(generator_shards, stage, steps=4), run_dir, resume=True)
    assert not marker.exists()


def test_held_out_files_skipped_by_the_evaluation_are_in_the_summary(shapes_index, tmp_path, capsys):
    rows = [json.loads(line) for line in shapes_index.read_text().splitlines()]
    rows = [{**row, "path": str(shapes_index.parent / row["path"])} for row in rows]  # relative to their index
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    index = tmp_path / "index.jsonl"
    index.write_text("".join(json.dumps(row) + "\n" for row in
                             [{"path": str(tmp_path / "broken.mp4"), "caption": "x", "split": "heldout"}, *rows]))
    train(tokenizer_config(index, steps=2), tmp_path / "run")
    out = capsys.readouterr().out
    assert "skipped 1 unreadable or too-short held-out files:" in out and "broken.mp4: unreadable" in out
    last = strict_records(tmp_path / "run" / "metrics.jsonl")[-1]
    # of the first 2 held-out clips: 1 scored, none in the broken one's place
    assert last["eval_skipped"] == 1 and last["eval_clips"] == 1


def test_the_recipe_resumes_a_stage_with_a_checkpoint_and_restarts_one_without(finished_run, tmp_path):
    import shutil

    from t2v.recipes.run_stages import resumable

    shutil.copytree(finished_run, tmp_path / "with")
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "config.json").write_text("{}")  # a stage killed before its first checkpoint
    assert resumable(tmp_path / "with") and (tmp_path / "with" / "model.safetensors").is_file()
    assert not resumable(tmp_path / "killed") and not (tmp_path / "killed").exists()
    assert not resumable(tmp_path / "never")


def test_a_resume_at_the_final_step_redoes_a_stale_export(finished_run, shapes_index, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    final = load_state(ckpt.latest_checkpoint(run_dir), "state")["model"]
    ckpt.export_weights({name: torch.zeros_like(t) for name, t in final.items()}, run_dir, step=2)  # an older export
    assert ckpt.exported_step(run_dir) == 2
    train(tokenizer_config(shapes_index), run_dir, resume=True)  # at the final step: no step runs
    exported = load_file(str(run_dir / "model.safetensors"))
    assert ckpt.exported_step(run_dir) == 4 and all(torch.equal(exported[name], final[name]) for name in final)
    assert load_state(ckpt.latest_checkpoint(run_dir), "state")["step"] == 4


def test_a_failed_start_removes_only_the_directories_it_made(tmp_path):
    from t2v.core.rundir import RunClaim

    claim = RunClaim(tmp_path / "runs" / "a", resume=False)
    (tmp_path / "runs" / "a" / "config.json").write_text("{}")
    (tmp_path / "runs" / "b").mkdir()  # another run started beside it meanwhile
    claim.abandon()
    assert not (tmp_path / "runs" / "a").exists() and (tmp_path / "runs" / "b").is_dir()
    RunClaim(tmp_path / "new" / "deep" / "c", resume=False).abandon()
    assert not (tmp_path / "new").exists()  # every parent it made, once empty


def test_non_finite_generator_weights_are_never_saved(generator_shards, tmp_path, monkeypatch):
    from t2v.generator.train import SkippingAdamW
    from t2v.generator.train import train as train_generator

    real_step = SkippingAdamW.step

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("inf"))  # an update that overflowed
        return result

    monkeypatch.setattr(SkippingAdamW, "step", step)
    with pytest.raises(FloatingPointError, match="generator's weights at step 2 hold NaN or inf"):
        train_generator(generator_config(generator_shards, steps=4), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written; the failed start left no directory


def test_a_killed_run_frees_its_directory_though_a_forked_worker_lives_on(tmp_path):
    """A flock lives as long as any copy of its file: a forked child (a DataLoader worker) closes its copy, so the
    directory of a trainer killed with kill -9 can be resumed at once, not when its workers notice."""
    script = textwrap.dedent(f'''
        import os, time
        from t2v.core import rundir
        claim = rundir.claim("{tmp_path / "run"}", resume=False)
        if os.fork() == 0:  # the worker: outlives its parent by seconds
            time.sleep(5)
            os._exit(0)
        os._exit(137)  # the trainer, killed
    ''')
    # no pipes: the worker would hold them open, and run() would wait for it
    done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=60)
    assert done.returncode == 137
    from t2v.core import rundir

    claim = rundir.claim(tmp_path / "run", resume=True)  # RunDirectoryBusy while the worker held a copy
    claim.release()
