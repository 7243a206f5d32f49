"""The CLI answers at once: help, and arguments and paths a user got wrong, are answered before torch (~2 s) and
the models' modules (~10 s) are imported. Checked by what a fresh process imported, not by timing it."""
from __future__ import annotations

import subprocess
import sys

import pytest

# `t2v ARGS…` in-process in a fresh interpreter; its last stdout line says the exit code and whether torch was imported
MAIN = """
import sys
from t2v.cli.main import main
sys.argv = ["t2v", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code
print(f"exit={code} torch={'torch' in sys.modules}")
"""


def run_fresh(args: list[str], cwd) -> tuple[str, str, str]:
    """(last stdout line, whole stdout, stderr) of `t2v args` in a new Python process run in `cwd`."""
    done = subprocess.run([sys.executable, "-c", MAIN, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return done.stdout.splitlines()[-1], done.stdout, done.stderr


def test_generate_on_a_missing_directory_never_imports_torch(tmp_path):
    missing, out = tmp_path / "no_pipeline", tmp_path / "out.mp4"
    last, _, err = run_fresh(["generate", str(missing), "x", "-o", str(out)], tmp_path)
    assert err == (f"Error: pipeline directory not found: {missing} (make one with `t2v recipe run shapes --out "
                   "DIR`, or name a shipped pipeline: shapes)\n")
    assert last == "exit=2 torch=False" and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["generate", "{tmp}", "x", "-o", "{tmp}/a.mp4"], "is not a pipeline directory: no pipeline.json"),
    (["generate", "{tmp}/none", "x", "-o", "{tmp}/a.mp4", "--size", "0"], "size '0' must be positive"),
    (["generate", "{tmp}/none", "x", "-o", "{tmp}/a.mkv"], "unknown suffix '.mkv'"),
    (["extend", "{tmp}/none", "{tmp}/none.mp4", "-o", "{tmp}/a.mp4"], "video not found: {tmp}/none.mp4"),
    (["data", "check", "{tmp}/none.jsonl"], "index not found: {tmp}/none.jsonl"),
    (["tokenizer", "encode", "{tmp}/none", "{tmp}/none.jsonl", "{tmp}"], "already exists"),
    (["tokenizer", "reconstruct", "{tmp}/none", "{tmp}/none.mp4", "{tmp}/a.mp4"], "video not found"),
    (["tokenizer", "train", "nope"], "unknown recipe 'nope'"),
    (["generator", "train", "nope"], "unknown recipe 'nope'"),
    (["recipe", "run", "nope", "--out", "{tmp}/run"], "unknown recipe 'nope'"),
    (["serve", "{tmp}/none"], "pipeline directory not found: {tmp}/none"),
    (["serve", "{tmp}"], "is not a pipeline directory: no pipeline.json"),
    (["serve", "shapes", "--port", "0"], "Invalid value for '--port': 0 is not in the range 1<=x<=65535"),
])
def test_bad_arguments_are_refused_before_torch(tmp_path, args, message):
    args = [arg.format(tmp=tmp_path) for arg in args]
    last, _, err = run_fresh(args, tmp_path)
    assert err.startswith("Error: ") and err.count("\n") == 1 and message.format(tmp=tmp_path) in err, err
    assert last == "exit=2 torch=False"
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"], ["extend", "--help"], ["data", "--help"],
                                  ["serve", "--help"]])
def test_help_never_imports_torch(tmp_path, args):
    last, out, _ = run_fresh(args, tmp_path)
    assert last == "exit=0 torch=False" and "Usage: t2v" in out


def test_serve_refuses_a_port_in_use_and_a_file_as_out_dir_before_torch_and_gradio(tmp_path):
    import socket

    (tmp_path / "file").write_text("")
    # the same run, also telling whether gradio was imported
    script = MAIN.replace("torch={'torch' in sys.modules}", "torch={'torch' in sys.modules} gradio={'gradio' in "
                          "sys.modules}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, message in [(["--port", port], f"cannot serve on 127.0.0.1:{port}: address already in use; "
                                                 "choose another --port"),
                              (["--out-dir", str(tmp_path / "file")], f"--out-dir {tmp_path / 'file'} is a file")]:
            done = subprocess.run([sys.executable, "-c", script, "serve", "shapes", *args], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
            assert message in done.stderr, done.stderr
            assert done.stdout.splitlines()[-1] == "exit=2 torch=False gradio=False"
    assert [path.name for path in tmp_path.iterdir()] == ["file"]
