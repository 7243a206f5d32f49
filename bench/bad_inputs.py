"""Benchmark of failure handling: bad inputs and faults through the real `t2v` CLI, each in a scratch directory.

Each case runs `python -m t2v.cli.main …` in a subprocess and records the exit status, the message (stderr's
`Error:`/`Warning:`/`Usage:` lines, or a traceback's last line), whether a traceback was printed, and what the
command left on disk: the files it added, changed or removed under the scratch directory (files that must be
kept are among them when they changed). Disk full and read-only outputs are real: a 96 KiB tmpfs and a read-only
bind mount (needs root; skipped otherwise). Prints a markdown table and writes JSON.

    python bench/bad_inputs.py                     # every case (about 5 minutes on 2 CPU cores)
    python bench/bad_inputs.py --only generate     # the cases whose name holds 'generate'
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from t2v.core import config_io

Setup = Callable[[Path, Path], None]  # (scratch, fixtures)


@dataclass
class Case:
    name: str
    args: list[str]  # {S}: the scratch directory, {F}: the fixtures
    setup: Setup | None = None
    mount: str | None = None  # "full" (tmpfs with no room left) or "readonly", at {S}/mnt
    env: dict[str, str] = field(default_factory=dict)


# 1. Fixtures: a tiny random pipeline, tokenizer, clip, dataset, finished runs ------------------------------------
def tiny_tokenizer():
    from t2v.tokenizer.model import VideoTokenizer
    from t2v.tokenizer.config import QuantizerConfig, preset

    torch.manual_seed(0)
    config = preset("tiny", channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=QuantizerConfig(fsq_levels=(4, 4, 4)))
    return VideoTokenizer(config).eval()


def tokenizer_train_config(index: Path) -> dict:
    from t2v.tokenizer.config import LossConfig
    from t2v.tokenizer.config import QuantizerConfig, preset
    from t2v.tokenizer.config import DataConfig, TokenizerTrainConfig

    model = preset("tiny", channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=QuantizerConfig(fsq_levels=(4, 4, 4)))
    config = TokenizerTrainConfig(
        name="bad", model=model, loss=LossConfig(perceptual_weight=0, discriminator_channels=4),
        data=DataConfig(index=str(index), train_split="seen", eval_split="heldout", num_frames=5, size=(16, 16),
                        eval_clips=2, num_workers=0),
        steps=4, batch_size=2, log_every=1, eval_every=1000, checkpoint_every=2, num_samples=1)
    return config_io.to_dict(config)


def make_fixtures(root: Path) -> None:
    """Everything the cases read: made once with the library, never changed by a case (cases copy what they damage)."""
    from t2v.generator.model import VideoGenerator
    from t2v.generator.config import GeneratorConfig
    from t2v.generator.pipeline import PipelineInfo, TextToVideo
    from t2v.generator.text import TextTokenizer
    from t2v.generator.train import train as train_generator
    from t2v.generator.config import GeneratorDataConfig, GeneratorTrainConfig
    from t2v.recipes.shapes.dataset import all_captions, make_dataset, split_of
    from t2v.tokenizer.shards import ShardWriter
    from t2v.tokenizer.train import train as train_tokenizer
    from t2v.tokenizer.config import TokenizerTrainConfig
    from t2v.tokenizer.video_io import write_video

    captions = [caption.text for caption in all_captions()]
    video_tokenizer = tiny_tokenizer()
    video_tokenizer.save_pretrained(root / "tokenizer")
    text = TextTokenizer.train(captions, vocab_size=100, max_len=10)
    torch.manual_seed(0)
    generator = VideoGenerator(GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128,
                                               max_text_len=10, sizes=[[2, 2]], rates=[8.0], text_size=text.size,
                                               codebook_size=video_tokenizer.codebook_size)).eval()
    TextToVideo(video_tokenizer, generator, text, PipelineInfo(fps=8, size=(16, 16), frames=5)).save_pretrained(
        root / "pipeline")
    rng = np.random.default_rng(0)
    write_video(root / "clip.mp4", rng.integers(0, 255, (9, 16, 16, 3), dtype=np.uint8), fps=8)
    index = make_dataset(root / "data", num=8, frames=9, size=(32, 32), seed=0)
    (root / "tokenizer.json").write_text(json.dumps(tokenizer_train_config(index)))
    train_tokenizer(config_io.from_dict(TokenizerTrainConfig, tokenizer_train_config(index)), root / "tok_run")
    writer = ShardWriter(root / "shards", 64)
    for i in range(16):
        caption = all_captions()[int(rng.integers(len(captions)))]
        writer.add((np.arange(32).reshape(2, 4, 4) + i) % 64,
                   {"caption": caption.text, "split": split_of(caption), "path": f"c{i}.mp4"})
    writer.close({"fps": 8.0})
    generator_config = GeneratorTrainConfig(
        name="bad", model=GeneratorConfig(layers=1, hidden=32, heads=2, kv_heads=2, intermediate=64),
        data=GeneratorDataConfig(shards=str(root / "shards"), train_split="seen", eval_split="heldout",
                                 text_vocab_size=64, max_text_len=12), steps=2,
        batch_size=2, log_every=1, checkpoint_every=2)
    config_io.write_config(root / "generator.json", generator_config)
    train_generator(generator_config, root / "gen_run")


# 2. Case set-ups ----------------------------------------------------------------------------------------------
def user_folder(name: str) -> Setup:
    def setup(scratch: Path, _: Path) -> None:
        (scratch / name).mkdir()
        (scratch / name / "holiday.mp4").write_bytes(b"precious")
        (scratch / name / "notes.txt").write_text("keep me")
    return setup


def existing_file(name: str) -> Setup:
    def setup(scratch: Path, _: Path) -> None:
        (scratch / name).write_bytes(b"an older video")
    return setup


def copy_fixture(name: str, then: Callable[[Path], None] | None = None) -> Setup:
    def setup(scratch: Path, fixtures: Path) -> None:
        shutil.copytree(fixtures / name, scratch / name)
        if then is not None:
            then(scratch / name)
    return setup


def write_text(name: str, text: str) -> Setup:
    def setup(scratch: Path, _: Path) -> None:
        (scratch / name).write_text(text)
    return setup


def truncate(relative: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        path = directory / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def corrupt_index(scratch: Path, fixtures: Path) -> None:
    """201 rows of which 23 are damaged JSON."""
    row = json.loads((fixtures / "data" / "index.jsonl").read_text().splitlines()[0])
    row["path"] = str(fixtures / "data" / row["path"])
    lines = [json.dumps(row) if i % 9 else '{"path": "a.mp4", "caption": ' for i in range(201)]
    (scratch / "index.jsonl").write_text("\n".join(lines[:201]) + "\n")


def unreadable_index(scratch: Path, fixtures: Path) -> None:
    rows = [json.loads(line) for line in (fixtures / "data" / "index.jsonl").read_text().splitlines()]
    (scratch / "broken.mp4").write_bytes(b"not a video")
    rows = [{**row, "path": str(fixtures / "data" / row["path"])} for row in rows]
    rows.insert(0, {"path": str(scratch / "broken.mp4"), "caption": "x", "split": "seen"})
    (scratch / "index.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def no_readable_split(scratch: Path, fixtures: Path) -> None:
    (scratch / "broken.mp4").write_bytes(b"not a video")
    (scratch / "index.jsonl").write_text("".join(json.dumps({"path": str(scratch / "broken.mp4"), "caption": "x",
                                                             "split": split}) + "\n" for split in ("seen", "heldout")))
    config = json.loads((fixtures / "tokenizer.json").read_text())
    config["data"]["index"] = str(scratch / "index.jsonl")
    (scratch / "config.json").write_text(json.dumps(config))


def state_without(key: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        from t2v.core.checkpoint import latest_checkpoint
        from t2v.core.state_io import load_state, save_state

        latest = latest_checkpoint(run)
        state = load_state(latest, "state")
        del state[key]
        save_state(state, latest, "state")
    return damage


class Payload:
    """Unpickling it writes PAYLOAD_RAN beside the scratch directory's files."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def pickle_into(relative_glob: str, marker: str = "PAYLOAD_RAN") -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        pointer = (run / "checkpoints" / "latest").read_text().strip()
        for path in (run / "checkpoints" / pointer).glob(relative_glob):
            torch.save({"module": Payload(run.parent / marker)}, path)
    return damage


def cut_metrics(line: str, middle: bool) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        path = run / "metrics.jsonl"
        lines = path.read_text().splitlines()
        lines = lines[:1] + [line] + lines[1:] if middle else lines + [line]
        path.write_text("\n".join(lines) + ("\n" if middle else ""))
    return damage


def hold_lock(scratch: Path, fixtures: Path) -> None:
    shutil.copytree(fixtures / "tok_run", scratch / "tok_run")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from t2v.core.rundir import claim
        held = claim(sys.argv[1], resume=True)
        print("holding", flush=True)
        time.sleep(120)
    """), str(scratch / "tok_run")], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    HOLDERS.append(holder)


HOLDERS: list[subprocess.Popen] = []


def cases() -> list[Case]:
    gen = ["generate", "{F}/pipeline", "a red circle moving left slowly"]
    tok_train = ["tokenizer", "train", "{F}/tokenizer.json"]
    return [
        # output paths
        Case("generate -o onto a folder with files", [*gen, "-o", "{S}/Videos/"], user_folder("Videos")),
        Case("generate -o onto a folder, no slash", [*gen, "-o", "{S}/Videos"], user_folder("Videos")),
        Case("generate --overwrite onto a folder it did not write", [*gen, "-o", "{S}/Videos", "--overwrite"],
             user_folder("Videos")),
        Case("generate -o onto an existing file", [*gen, "-o", "{S}/old.mp4"], existing_file("old.mp4")),
        Case("generate -o onto a file, sample 2 of 2 exists", [*gen, "-o", "{S}/v.mp4", "--num-samples", "2"],
             existing_file("v_s1.mp4")),
        Case("generate --preview onto an existing PNG", [*gen, "-o", "{S}/v.mp4", "--preview"],
             existing_file("v.preview.png")),
        Case("generate -o still.png --frames 1 (allowed)", [*gen, "-o", "{S}/still.png", "--frames", "1"]),
        Case("generate -o still.png --frames 3", [*gen, "-o", "{S}/still.png", "--frames", "3"]),
        Case("generate -o .", [*gen, "-o", "."]),
        Case("generate -o out.mp4/", [*gen, "-o", "{S}/out.mp4/"]),
        Case("generate -o out.avi", [*gen, "-o", "{S}/out.avi"]),
        Case("extend -o onto a folder with files", ["extend", "{F}/pipeline", "{F}/clip.mp4", "-o", "{S}/Videos/"],
             user_folder("Videos")),
        Case("tokenizer reconstruct onto a folder with files",
             ["tokenizer", "reconstruct", "{F}/tokenizer", "{F}/clip.mp4", "{S}/Videos"], user_folder("Videos")),
        Case("tokenizer reconstruct onto an existing file",
             ["tokenizer", "reconstruct", "{F}/tokenizer", "{F}/clip.mp4", "{S}/old.mp4"], existing_file("old.mp4")),
        # disk faults
        Case("generate onto a full disk", [*gen, "-o", "{S}/mnt/v.mp4", "--frames", "400"], mount="full"),
        Case("generate onto a read-only disk", [*gen, "-o", "{S}/mnt/v.mp4"], mount="readonly"),
        Case("tokenizer train onto a full disk", [*tok_train, "--out", "{S}/mnt/run"], mount="full"),
        Case("tokenizer train onto a read-only disk", [*tok_train, "--out", "{S}/mnt/run"], mount="readonly"),
        # damaged inputs
        Case("generate with a missing pipeline", ["generate", "{S}/nope", "x", "-o", "{S}/v.mp4"]),
        Case("generate with a damaged pipeline.json", ["generate", "{S}/pipeline", "x", "-o", "{S}/v.mp4"],
             copy_fixture("pipeline", lambda d: (d / "pipeline.json").write_text('{"fps": 8,'))),
        Case("generate with a truncated model.safetensors", ["generate", "{S}/pipeline", "x", "-o", "{S}/v.mp4"],
             copy_fixture("pipeline", truncate("generator/model.safetensors"))),
        Case("generate with a non-Latin prompt", ["generate", "{F}/pipeline", "ein roter Kreis 赤い円 🔴",
                                                  "-o", "{S}/v.mp4"]),
        Case("generate with a 5,000-word prompt", ["generate", "{F}/pipeline", " ".join(["red"] * 5000),
                                                   "-o", "{S}/v.mp4"]),
        Case("generate --size 7x", [*gen, "-o", "{S}/v.mp4", "--size", "7x"]),
        Case("generate with a malformed storyboard", ["generate", "{F}/pipeline", "-o", "{S}/v.mp4", "--storyboard",
                                                      "{S}/story.yaml"], write_text("story.yaml", "- at: [\n")),
        Case("tokenizer train with malformed YAML", ["tokenizer", "train", "{S}/bad.yaml"],
             write_text("bad.yaml", "steps: 10\n  data: [1,\n")),
        Case("tokenizer train with a config that is a list", ["tokenizer", "train", "{S}/list.yaml"],
             write_text("list.yaml", "- steps: 10\n")),
        Case("tokenizer train with an unknown --set key", [*tok_train, "--set", "nope=1", "--out", "{S}/run"]),
        Case("tokenizer train, no readable file in the split", ["tokenizer", "train", "{S}/config.json"],
             no_readable_split),
        Case("data check of a 201-row index with 23 damaged rows", ["data", "check", "{S}/index.jsonl"],
             corrupt_index),
        Case("data check with an unreadable file", ["data", "check", "{S}/index.jsonl", "--frames", "5"],
             unreadable_index),
        Case("data shapes --size 7x9", ["data", "shapes", "{S}/shapes", "--num", "4", "--size", "7x9"]),
        Case("data shapes into an existing dataset", ["data", "shapes", "{S}/data", "--num", "4"],
             copy_fixture("data")),
        Case("tokenizer encode into an existing folder", ["tokenizer", "encode", "{F}/tokenizer",
                                                          "{F}/data/index.jsonl", "{S}/Videos"], user_folder("Videos")),
        Case("generator train with missing shards", ["generator", "train", "{F}/generator.json", "--shards",
                                                     "{S}/nope", "--out", "{S}/run"]),
        # runs
        Case("tokenizer train, fresh run into a used run directory", [*tok_train, "--out", "{S}/tok_run"],
             copy_fixture("tok_run")),
        Case("tokenizer train into a run directory another run holds",
             [*tok_train, "--resume", "{S}/tok_run", "--set", "steps=6"], hold_lock),
        Case("tokenizer train --resume of a directory without checkpoint", [*tok_train, "--resume", "{S}/Videos"],
             user_folder("Videos")),
        Case("tokenizer resume, state.json without 'model'", ["tokenizer", "train", "x", "--resume", "{S}/tok_run"],
             copy_fixture("tok_run", state_without("model"))),
        Case("tokenizer resume, pickle payload in state.safetensors",
             ["tokenizer", "train", "x", "--resume", "{S}/tok_run"],
             copy_fixture("tok_run", pickle_into("state.safetensors"))),
        Case("tokenizer resume, pickle payload as state.pt (old layout)",
             ["tokenizer", "train", "x", "--resume", "{S}/tok_run", "--set", "steps=6"],
             copy_fixture("tok_run", pickle_into("rng_rank0.*"))),
        Case("generator resume, pickle payload in DeepSpeed's model states",
             ["generator", "train", "x", "--resume", "{S}/gen_run", "--set", "steps=4"],
             copy_fixture("gen_run", pickle_into("mp_rank_00_model_states.pt"))),
        Case("tokenizer resume, metrics.jsonl cut mid-line (allowed)",
             ["tokenizer", "train", "x", "--resume", "{S}/tok_run", "--set", "steps=6"],
             copy_fixture("tok_run", cut_metrics('{"step": 5, "lo', middle=False))),
        Case("tokenizer resume, metrics.jsonl damaged mid-file",
             ["tokenizer", "train", "x", "--resume", "{S}/tok_run", "--set", "steps=6"],
             copy_fixture("tok_run", cut_metrics('{"step": 1, "lo', middle=True))),
        Case("tokenizer train with a NaN-inducing learning rate",
             [*tok_train, "--set", "optim.lr=1e30", "--set", "max_skipped_steps=2", "--set", "steps=20",
              "--out", "{S}/run"]),
        Case("generator train with a NaN-inducing learning rate",
             ["generator", "train", "{F}/generator.json", "--set", "optim.lr=1e30", "--set", "max_skipped_steps=2",
              "--set", "steps=20", "--out", "{S}/run"]),
    ]


# 3. Running a case ---------------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """relative path → content hash ('dir' for folders), '.lock' files included."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            state[str(path.relative_to(root)) + "/"] = "dir"
        elif path.is_file():
            state[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return state


def left_on_disk(before: dict[str, str], after: dict[str, str]) -> str:
    added = [p for p in after if p not in before]
    removed = [p for p in before if p not in after]
    changed = [p for p in after if p in before and after[p] != before[p]]
    parts = []
    for label, paths in (("added", added), ("changed", changed), ("removed", removed)):
        if paths:
            parts.append(f"{label} {len(paths)}: {', '.join(paths[:3])}{', …' if len(paths) > 3 else ''}")
    return "; ".join(parts) or "nothing"


@contextlib.contextmanager
def mounted(kind: str | None, scratch: Path) -> Iterator[str | None]:
    """A full tmpfs or a read-only bind mount at scratch/mnt; yields None when mounting is not possible."""
    if kind is None:
        yield "none"
        return
    target = scratch / "mnt"
    target.mkdir()
    if kind == "full":
        command = ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(target)]
    else:
        source = scratch / ".ro-source"
        source.mkdir()
        command = ["mount", "--bind", str(source), str(target)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        yield None
        return
    try:
        if kind == "full":
            with contextlib.suppress(OSError), open(target / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        else:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield kind
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def message(stderr: str) -> tuple[str, bool]:
    """The user-facing lines of stderr (progress bars dropped) and whether a traceback was printed."""
    lines = [part.strip() for line in stderr.splitlines() for part in line.split("\r")]
    traceback = any(line.startswith("Traceback") for line in lines)
    shown = [line for line in lines if line.startswith(("Error", "Warning", "Usage"))]
    if traceback:
        shown.append(next(line for line in reversed(lines) if line))
    return " / ".join(shown), traceback


def run_case(case: Case, fixtures: Path, work: Path) -> dict:
    scratch = Path(tempfile.mkdtemp(dir=work, prefix="case-"))
    if case.setup is not None:
        case.setup(scratch, fixtures)
    with mounted(case.mount, scratch) as mount:
        if mount is None:
            return {"case": case.name, "skipped": "needs root to mount a tmpfs / bind mount"}
        before = snapshot(scratch)
        args = [arg.replace("{S}", str(scratch)).replace("{F}", str(fixtures)) for arg in case.args]
        env = {**os.environ, "TQDM_DISABLE": "1", **case.env}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "t2v.cli.main", *args], cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - started
        after = snapshot(scratch)
    for holder in HOLDERS:
        holder.kill()
        holder.wait()
    HOLDERS.clear()
    text, traceback = message(done.stderr.replace(str(scratch), "{S}").replace(str(fixtures), "{F}"))
    shown = [arg if len(arg) < 60 else arg[:40] + f"…({len(arg)} chars)" for arg in case.args]
    return {"case": case.name, "command": "t2v " + " ".join(shown), "exit": done.returncode,
            "message": text, "error_lines": sum(line.startswith("Error") for line in text.split(" / ")),
            "traceback": traceback, "left_on_disk": left_on_disk(before, after),
            "payload_ran": (scratch / "PAYLOAD_RAN").exists(), "seconds": round(seconds, 1)}


def table(rows: list[dict]) -> str:
    out = ["| case | command | exit | message ({S}: the case's scratch folder, {F}: the fixtures) | left on disk |",
           "|---|---|---|---|---|"]
    for row in rows:
        if "skipped" in row:
            out.append(f"| {row['case']} | | | skipped: {row['skipped']} | |")
            continue
        note = " **(payload ran)**" if row["payload_ran"] else ""
        message_text = row["message"].replace("|", "\\|") or "(none)"
        command = row["command"].replace("|", "\\|")
        out.append(f"| {row['case']} | `{command}` | {row['exit']} | {message_text}{note} | {row['left_on_disk']} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run the cases whose name holds this text")
    parser.add_argument("--out", type=Path, default=Path("bench/results/bad_inputs.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="t2v-bad-inputs-") as work:
        fixtures = Path(work) / "fixtures"
        make_fixtures(fixtures)
        rows = []
        for case in cases():
            if args.only in case.name:
                rows.append(run_case(case, fixtures, Path(work)))
                print(f"{rows[-1]['case']}: exit {rows[-1].get('exit')}, {rows[-1].get('message', '')[:120]}",
                      file=sys.stderr)
    print(table(rows))
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "command": "python bench/bad_inputs.py" + (f" --only {args.only!r}" if args.only else ""),
              "cases": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report → {args.out}")


if __name__ == "__main__":
    main()
