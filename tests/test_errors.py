"""Faults a user can fix give one line that names the file and the fix, exit 2, and write nothing: damaged config
files and model files, a full or read-only disk, denied permissions, diverged training; warnings are one line; an
unreadable held-out file is reported by the evaluation, never scored as another clip."""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import run_main, tiny_generator, tiny_model, tiny_pipeline

RED = "a red circle moving left slowly"


def raising(error: BaseException):
    """A stand-in for a library call that fails with `error`."""
    def fail(*args, **kwargs):
        raise error
    return fail


def train_args(tmp_path: Path) -> list[str]:
    """`t2v tokenizer train shapes` on an (empty) index that exists, into tmp_path/run."""
    index = tmp_path / "index.jsonl"
    index.write_text("")
    return ["tokenizer", "train", "shapes", "--set", f"data.index={index}", "--out", str(tmp_path / "run")]


def one_line_error(code: int, err: str, *parts: str) -> None:
    """Exit 2 and a single `Error: …` line on stderr holding each of `parts`."""
    assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1, (code, err)
    for part in parts:
        assert part in err, (part, err)


# 1. configs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "steps: 10\n  model: [1,\n", "invalid YAML: mapping values are not allowed here (line 2, column 8)"),
    ("list.yaml", "- steps\n- model\n", "a config must be a mapping of keys to values"),
    ("bad.json", '{"steps": 10,}', "invalid JSON: Expecting property name enclosed in double quotes (line 1, "
                                   "column 14)"),
    ("section.yaml", "model: 3\n", "TokenizerTrainConfig.model is a section"),
    ("binary.yaml", b"\xff\xfe\x00", "not a text file"),
])
def test_damaged_config_files_are_one_line(tmp_path, monkeypatch, capsys, name, text, message):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["tokenizer", "train", str(path)], monkeypatch, capsys)
    one_line_error(code, err, str(path), message)
    assert out == "" and not (tmp_path / "runs").exists()


def test_config_errors_from_the_library_name_the_file(tmp_path):
    from t2v.core.config_io import load
    from t2v.tokenizer.config import TokenizerTrainConfig

    path = tmp_path / "unknown.yaml"
    path.write_text("stepz: 3\n")
    with pytest.raises(ValueError, match=r"unknown\.yaml: unknown config key\(s\) for TokenizerTrainConfig: stepz"):
        load(TokenizerTrainConfig, path)
    path.write_text("")  # an empty file is the default config
    assert load(TokenizerTrainConfig, path) == TokenizerTrainConfig()


# 2. damaged model files ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_dir(text, tmp_path_factory):
    return tiny_pipeline(text).save_pretrained(tmp_path_factory.mktemp("pipe") / "pipeline")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_key(*keys: str):
    def damage(path: Path) -> None:
        values = json.loads(path.read_text())
        section = values
        for key in keys[:-1]:
            section = section[key]
        del section[keys[-1]]
        path.write_text(json.dumps(values))
    return damage


@pytest.mark.parametrize("part, damage, message", [
    ("video_tokenizer/model.safetensors", truncate, "not a readable safetensors file"),
    ("video_tokenizer/config.json", truncate, "not valid JSON"),
    ("video_tokenizer/config.json", drop_key("quantizer", "fsq_levels"), "missing key(s) quantizer.fsq_levels"),
    ("generator/model.safetensors", truncate, "not a readable safetensors file"),
    ("generator/config.json", truncate, "not valid JSON"),
    ("generator/config.json", drop_key("hidden"), "missing key(s) hidden"),
    ("text_tokenizer/text.model", truncate, "not a sentencepiece model"),
    ("text_tokenizer/text.json", truncate, "not valid JSON"),
    ("text_tokenizer/text.json", drop_key("max_len"), "\"max_len\""),
    ("pipeline.json", truncate, "not valid JSON"),
    ("pipeline.json", drop_key("frames"), "missing key(s) frames"),
])
def test_damaged_model_files_are_one_line(pipeline_dir, tmp_path, monkeypatch, capsys, part, damage, message):
    directory = Path(shutil.copytree(pipeline_dir, tmp_path / "pipeline"))
    damage(directory / part)
    out = tmp_path / "out.mp4"
    code, _, err = run_main(["generate", str(directory), RED, "-o", str(out), "--frames", "5"], monkeypatch, capsys)
    fix = "re-export it" if part == "pipeline.json" else "re-run `t2v"
    one_line_error(code, err, str(directory / part), message, fix)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline"]


def test_damaged_weights_of_a_standalone_tokenizer_and_generator(tmp_path):
    from t2v.generator.model import VideoGenerator
    from t2v.tokenizer.model import VideoTokenizer

    for cls, model, command in ((VideoTokenizer, tiny_model(), "t2v tokenizer train"),
                                (VideoGenerator, tiny_generator(), "t2v generator train")):
        directory = model.save_pretrained(tmp_path / cls.__name__)
        weights = directory / "model.safetensors"
        for damaged in (weights.read_bytes()[:5], b""):
            weights.write_bytes(damaged)
            with pytest.raises(ValueError) as error:
                cls.from_pretrained(directory)
            message = str(error.value)
            assert message.startswith(f"{weights}: not a readable safetensors file") and command in message
            assert "\n" not in message
        (directory / "config.json").write_text("[1, 2]")
        with pytest.raises(ValueError, match="config.json: expected a JSON object"):
            cls.from_pretrained(directory)


def test_a_text_model_cut_where_it_still_parses_is_found(text, tmp_path):
    from t2v.generator.text import TextTokenizer

    text.save(tmp_path)
    model = tmp_path / "text.model"
    whole = model.read_bytes()
    model.write_bytes(whole[:100])  # cut at a field boundary: sentencepiece reads the first pieces only
    with pytest.raises(ValueError, match=r"text\.model: holds \d+ pieces, text\.json records \d+: the file is "
                                         r"truncated or damaged"):
        TextTokenizer.load(tmp_path)
    model.write_bytes(whole)
    info = json.loads((tmp_path / "text.json").read_text())
    del info["size"]  # saved before text.json recorded the piece count
    (tmp_path / "text.json").write_text(json.dumps(info))
    assert TextTokenizer.load(tmp_path).size == text.size


def test_a_pipeline_json_with_bad_values_is_named(pipeline_dir, tmp_path):
    from t2v.generator.pipeline import TextToVideo

    directory = Path(shutil.copytree(pipeline_dir, tmp_path / "pipeline"))
    info = json.loads((directory / "pipeline.json").read_text())
    (directory / "pipeline.json").write_text(json.dumps({**info, "size": [16]}))
    with pytest.raises(ValueError, match=r"pipeline\.json: expected fps .* size=\[16\]"):
        TextToVideo.from_pretrained(directory)


# 3. disk full, read-only, permissions; diverged training; warnings --------------------------------------------
@pytest.mark.parametrize("code, reason, fix", [
    (errno.ENOSPC, "no space left on device", "free space on the device or choose another output"),
    (errno.EDQUOT, "disk quota exceeded", "free space within your disk quota"),
    (errno.EROFS, "read-only file system", "choose an output on a writable file system"),
    (errno.EACCES, "permission denied", "check its permissions"),
    (errno.EPERM, "operation not permitted", "check its permissions"),
])
def test_os_errors_while_writing_are_one_line(pipeline_dir, tmp_path, monkeypatch, capsys, code, reason, fix):
    from t2v.tokenizer.video_io import VideoWriter

    def fail(self, frames):
        raise OSError(code, os.strerror(code), str(self.path))

    monkeypatch.setattr(VideoWriter, "write", fail)
    out = tmp_path / "out.mp4"
    status, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(out), "--frames", "5"], monkeypatch,
                              capsys)
    what = "cannot access" if code in (errno.EACCES, errno.EPERM) else "cannot write"
    one_line_error(status, err, f"Error: {what} {out}: {reason}; {fix}")
    assert list(tmp_path.iterdir()) == []


def test_os_errors_without_a_path_and_from_safetensors(monkeypatch, capsys, tmp_path):
    from safetensors import SafetensorError

    import t2v.tokenizer.train as tokenizer_train

    errors = [OSError(errno.ENOSPC, "No space left on device"),
              SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")]
    for error in errors:
        monkeypatch.setattr(tokenizer_train, "train", raising(error))
        code, _, err = run_main(train_args(tmp_path), monkeypatch, capsys)
        one_line_error(code, err, "Error: cannot write: no space left on device; free space on the device")


def test_os_errors_on_a_temporary_sibling_name_the_output(monkeypatch, capsys, tmp_path):
    import t2v.tokenizer.train as tokenizer_train

    cases = [(tmp_path / "run" / ".model.safetensors.k2j4h1x0.tmp", tmp_path / "run" / "model.safetensors"),
             (tmp_path / ".shapes.x1y2z3w4.tmp" / "videos" / "0.mp4", tmp_path / "shapes" / "videos" / "0.mp4")]
    for temp, shown in cases:
        error = OSError(errno.EROFS, "Read-only file system", str(temp))
        monkeypatch.setattr(tokenizer_train, "train", raising(error))
        code, _, err = run_main(train_args(tmp_path), monkeypatch, capsys)
        one_line_error(code, err, f"Error: cannot write {shown}: read-only file system; choose an output on a "
                                  "writable file system")


def test_other_os_errors_and_debug_keep_the_traceback(monkeypatch, tmp_path):
    from t2v.cli.main import main

    import t2v.tokenizer.train as tokenizer_train

    monkeypatch.setattr("sys.argv", ["t2v", *train_args(tmp_path)])
    for code, debug in ((errno.EIO, False), (errno.ENOSPC, True)):  # not a user's fault; T2V_DEBUG=1
        if debug:
            monkeypatch.setenv("T2V_DEBUG", "1")
        else:
            monkeypatch.delenv("T2V_DEBUG", raising=False)
        monkeypatch.setattr(tokenizer_train, "train", raising(OSError(code, os.strerror(code), "x")))
        with pytest.raises(OSError) as error:
            main()
        assert error.value.errno == code


def test_diverged_training_is_one_line(monkeypatch, capsys, tmp_path):
    import t2v.tokenizer.train as tokenizer_train

    error = FloatingPointError("training diverged at step 3: loss is nan; lower optim.lr")
    monkeypatch.setattr(tokenizer_train, "train", raising(error))
    code, _, err = run_main(train_args(tmp_path), monkeypatch, capsys)
    one_line_error(code, err, "Error: training diverged at step 3: loss is nan; lower optim.lr")


def test_warnings_are_one_line_and_name_the_characters(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.gif"
    code, _, err = run_main(["generate", str(pipeline_dir), "a red circle 🙂 moving left slowly", "-o", str(out),
                             "--frames", "5"], monkeypatch, capsys)
    assert code == 0 and out.is_file()
    lines = [line for line in err.splitlines() if "cannot represent" in line]
    assert lines == ["Warning: characters the text model cannot represent (read as unknown or dropped): '🙂'; "
                     "write the prompt in the letters of the training captions"], err
    assert "UserWarning" not in err and ".py:" not in err


def test_warnings_of_any_command_are_one_line(shapes_index, tmp_path):
    """In a real process (pytest records warnings itself): `Warning: …`, no source location or code line."""
    rows = Path(shapes_index).read_text().splitlines()[:2]
    rows = [json.dumps({**json.loads(row), "path": str(Path(shapes_index).parent / json.loads(row)["path"])})
            for row in rows]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    index = tmp_path / "index.jsonl"
    index.write_text("\n".join([*rows, json.dumps({"path": str(bad), "caption": "x"})]) + "\n")
    tiny_model().save_pretrained(tmp_path / "tok")
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("T2V_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "t2v.cli.main", "tokenizer", "encode", str(tmp_path / "tok"),
                           str(index), str(tmp_path / "shards"), "--size", "16"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if str(bad) in line] == [
        line for line in done.stderr.splitlines() if line.startswith(f"Warning: skipping {bad}: ")], done.stderr
    assert f"Warning: skipping {bad}" in done.stderr and "UserWarning" not in done.stderr
    assert ".py:" not in done.stderr, done.stderr


def test_the_text_tokenizer_names_characters_it_cannot_represent(text):
    with pytest.warns(UserWarning, match="cannot represent.*'é', 'ж', '🙂'") as record:
        text.encode("circlé ж 🙂")
    assert not [w for w in record if "never saw" in str(w.message)]  # 'circlé' is not also an unknown word
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert text.encode("Ａ RED circle moving left slowly") == text.encode("a red circle moving left slowly")


# 5. held-out evaluation with unreadable files -----------------------------------------------------------------
def eval_dataset(index: Path):
    from t2v.tokenizer.data import ClipDataset

    return ClipDataset(index, num_frames=9, size=(16, 16), crop="center")


def test_evaluation_skips_unreadable_files_and_never_scores_substitutes(shapes_index, tmp_path):
    from t2v.tokenizer.evaluate import evaluate

    rows = [json.loads(line) for line in Path(shapes_index).read_text().splitlines()][:4]
    for row in rows:
        row["path"] = str(Path(shapes_index).parent / row["path"])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(Path(rows[1]["path"]).read_bytes()[:100])
    damaged, clean = tmp_path / "damaged.jsonl", tmp_path / "clean.jsonl"
    damaged.write_text("".join(json.dumps({**row, "path": str(bad)} if i == 1 else row) + "\n"
                               for i, row in enumerate(rows)))
    clean.write_text("".join(json.dumps(row) + "\n" for i, row in enumerate(rows) if i != 1))
    model = tiny_model()
    with pytest.warns(UserWarning, match="skipping"):
        result = evaluate(model, eval_dataset(damaged), 3, torch.device("cpu"), batch_size=2)
    assert result.clips == 2 and list(result.skipped) == [str(bad)] and result.skipped[str(bad)]
    expected = evaluate(model, eval_dataset(clean), 2, torch.device("cpu"), batch_size=2)
    # the same two clips (batched differently: float rounding apart), not the bad one's substitute
    assert result.psnr == pytest.approx(expected.psnr, rel=1e-5)
    assert result.ssim == pytest.approx(expected.ssim, abs=1e-6)
    assert "2 clips scored, 1 unreadable skipped" in result.summary()
    assert result.as_dict()["eval_clips"] == 2 and result.as_dict()["eval_skipped"] == 1

    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text(json.dumps({**rows[0], "path": str(bad)}) + "\n" + json.dumps(rows[2]) + "\n")
    with pytest.warns(UserWarning, match="skipping"):
        none = evaluate(model, eval_dataset(only_bad), 1, torch.device("cpu"))
    assert none.clips == 0 and math.isnan(none.psnr) and list(none.skipped) == [str(bad)]
    assert "no clip could be read (0 clips scored, 1 unreadable skipped)" in none.summary()


# token shards (the generator's input) ---------------------------------------------------------------------------
def shard_damages():
    def cut(name: str, keep: int):
        return lambda directory: (directory / name).write_bytes((directory / name).read_bytes()[:keep])
    return [
        (cut("meta.json", 30), "meta.json: not valid JSON"),
        (lambda directory: (directory / "meta.json").write_text('{"format_version": 1}'),
         "meta.json: missing key(s) dtype, shards"),
        (cut("index.jsonl", 50), "index.jsonl: not valid JSON (line 1"),
        (cut("shard_00000.bin", 20), "shard_00000.bin: holds 10 codes but index.jsonl line 2 needs 16"),
        (cut("shard_00000.bin", 0), "shard_00000.bin: empty or cut in the middle of a code"),
        (lambda directory: (directory / "shard_00000.bin").unlink(), "shard file missing"),
    ]


@pytest.mark.parametrize("damage, message", shard_damages())
def test_damaged_token_shards_are_named(tmp_path, damage, message):
    import numpy as np

    from t2v.tokenizer.shards import ShardReader, ShardWriter

    writer = ShardWriter(tmp_path / "tokens", codebook_size=64)
    for _ in range(3):
        writer.add(np.zeros((2, 2, 2), dtype=np.int64), {"caption": "a red circle", "split": "seen"})
    directory = writer.close({"fps": 8.0})
    damage(directory)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        ShardReader.open(directory)
    text = str(error.value)
    assert message in text and str(directory) in text and "t2v tokenizer encode" in text and "\n" not in text
