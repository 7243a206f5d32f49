"""core/atomic.py and core/checkpoint.py: all-or-nothing writes, checkpoint rotation, `latest`, RNG states."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from t2v.core import checkpoint as ckpt
from t2v.core.atomic import atomic_directory, atomic_file, atomic_write_text


class Boom(Exception):
    pass


def save_checkpoint(run_dir, step, state, rank_states, keep: int = 2):
    """A whole checkpoint of one step, as a trainer saves it: written, then committed."""
    target = ckpt.write_checkpoint(run_dir, step, state, rank_states)
    ckpt.commit(run_dir, step, keep)
    return target


def listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# 1. Atomic files and directories -------------------------------------------------------------------------------
def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_file(target, suffix=".txt") as tmp:
        assert tmp.parent == tmp_path and tmp != target and tmp.name.endswith(".txt")
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible under the final name before the end
    assert target.read_text() == "new"
    assert listing(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_file_keeps_old_content_on_error(tmp_path, error):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_file(target) as tmp:
            tmp.write_text("half of the new")
            raise error()
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["a.txt"]  # no temp file left behind


def test_atomic_file_error_on_new_path_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_file(tmp_path / "sub" / "new.bin") as tmp:
            tmp.write_bytes(b"x")
            raise Boom()
    assert listing(tmp_path / "sub") == []


def test_atomic_write_text(tmp_path):
    path = atomic_write_text(tmp_path / "deep" / "x.json", "{}")
    assert path.read_text() == "{}"
    atomic_write_text(path, "[1]")
    assert path.read_text() == "[1]" and listing(path.parent) == ["x.json"]


def test_atomic_directory_replaces_on_success(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old.pt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.pt").write_text("new")
        assert listing(target) == ["old.pt"]
    assert listing(target) == ["new.pt"] and (target / "new.pt").read_text() == "new"
    assert listing(tmp_path) == ["ckpt"]  # no temp or backup directory left


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_directory_keeps_old_content_on_error(tmp_path, error):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old.pt").write_text("old")
    with pytest.raises(error):
        with atomic_directory(target) as tmp:
            (tmp / "new.pt").write_text("half")
            raise error()
    assert listing(target) == ["old.pt"] and (target / "old.pt").read_text() == "old"
    assert listing(tmp_path) == ["ckpt"]


def test_atomic_directory_new_path(tmp_path):
    with atomic_directory(tmp_path / "a" / "b") as tmp:
        (tmp / "f").write_text("1")
    assert listing(tmp_path / "a") == ["b"] and (tmp_path / "a" / "b" / "f").read_text() == "1"


# 2. Checkpoints ------------------------------------------------------------------------------------------------
def test_save_checkpoint_keeps_last_and_points_latest(tmp_path):
    for step in (1, 2, 3, 4):
        target = save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((2,), float(step))},
                                      [{"rank": 0}, {"rank": 1}], keep=2)
        assert target == ckpt.checkpoint_dir(tmp_path, step)
        assert ckpt.latest_checkpoint(tmp_path) == target
    assert listing(tmp_path / "checkpoints") == ["latest", "step_00000003", "step_00000004"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000004"
    assert listing(ckpt.checkpoint_dir(tmp_path, 4)) == ["rng_rank0.json", "rng_rank0.safetensors", "rng_rank1.json",
                                                         "rng_rank1.safetensors", "state.json", "state.safetensors"]

    state, rank_state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), rank=1)
    assert state["step"] == 4 and torch.equal(state["w"], torch.full((2,), 4.0))
    assert rank_state == {"rank": 1}
    _, missing_rank = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), rank=2)
    assert missing_rank is None  # written with fewer ranks


def test_save_checkpoint_keep_one_and_keep_all(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path / "one", step, {"step": step}, [{}], keep=1)
        save_checkpoint(tmp_path / "all", step, {"step": step}, [{}], keep=0)
    assert listing(tmp_path / "one" / "checkpoints") == ["latest", "step_00000030"]
    assert listing(tmp_path / "all" / "checkpoints") == ["latest", "step_00000010", "step_00000020",
                                                         "step_00000030"]
    assert ckpt.latest_checkpoint(tmp_path / "all").name == "step_00000030"


def test_interrupted_checkpoint_leaves_previous_one(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"step": 1}, [{}], keep=2)
    real_save = ckpt.save_state

    def failing_save(state, directory, name):
        if name == "rng_rank0":
            raise Boom("killed mid-write")
        return real_save(state, directory, name)

    monkeypatch.setattr(ckpt, "save_state", failing_save)
    with pytest.raises(Boom):
        save_checkpoint(tmp_path, 2, {"step": 2}, [{}], keep=2)
    monkeypatch.undo()
    assert listing(tmp_path / "checkpoints") == ["latest", "step_00000001"]
    state, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), rank=0)
    assert state == {"step": 1}


def test_latest_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        ckpt.latest_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step_00000007")
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        ckpt.latest_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "step_00000007").mkdir()  # a directory without state.json
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        ckpt.latest_checkpoint(tmp_path)


def test_rng_state_roundtrip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = ckpt.rng_state()
    first = (random.random(), float(np.random.rand()), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.set_rng_state(state)
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_atomic_files_get_the_permissions_of_a_new_file(tmp_path):
    from safetensors.torch import save_file

    from t2v.core.atomic import new_mode

    with atomic_file(tmp_path / "w.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))  # safetensors writes a file of its own (owner-only)
    atomic_write_text(tmp_path / "c.json", "{}")
    for name in ("w.safetensors", "c.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == new_mode(), name
