"""`t2v data shapes` and `t2v data check` through click's CliRunner."""
from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import run_main
from t2v.cli.main import cli


def test_shapes_then_check(tmp_path):
    runner = CliRunner()
    out = tmp_path / "shapes"
    result = runner.invoke(cli, ["data", "shapes", str(out), "--num", "6", "--frames", "5", "--size", "48x32",
                                 "--seed", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len(list((out / "videos").glob("*.mp4"))) == 6
    assert f"index: {out / 'index.jsonl'}" in result.output
    seen = sum(row["split"] == "seen" for row in rows)
    assert f"seen {seen}" in result.output

    result = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "5"])
    assert result.exit_code == 0 and result.stdout == "6/6 ok, 0 skipped\n"
    assert "6/6 [" in result.stderr  # the progress bar's last state: every file decoded
    (out / rows[0]["path"]).write_bytes(b"broken")
    result = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "5", "--quiet"])
    assert result.exit_code == 1, result.output  # a file would be skipped
    assert result.stdout.splitlines()[0] == "5/6 ok, 1 skipped" and len(result.stdout.splitlines()) == 2
    assert rows[0]["path"].split("/")[-1] in result.stdout and "unreadable" in result.stdout
    assert result.stderr == "Error: 1 of 6 files would be skipped: fix or remove them, or pass --allow-skipped\n"
    allowed = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "5", "--allow-skipped",
                                  "-q"])
    assert allowed.exit_code == 0 and allowed.stdout == result.stdout and allowed.stderr == ""
    result = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "6"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "0/6 ok, 6 skipped" and "too short: decoded 5 frames" in result.stdout


def test_heldout_split_and_bad_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "shapes", str(tmp_path / "h"), "--num", "3", "--frames", "2",
                                 "--split", "heldout"])
    assert result.exit_code == 0, result.output
    assert "heldout 3" in result.output and "seen" not in result.output.splitlines()[-1]
    result = runner.invoke(cli, ["data", "shapes", str(tmp_path / "x"), "--num", "0"])
    assert result.exit_code == 2 and "--num" in result.output
    result = runner.invoke(cli, ["data", "shapes", str(tmp_path / "x"), "--num", "1", "--size", "big"])
    assert result.exit_code == 2 and "N or WxH" in result.output
    assert not (tmp_path / "x").exists()


def test_help_has_examples():
    runner = CliRunner()
    for command in ("shapes", "check"):
        result = runner.invoke(cli, ["data", command, "--help"])
        assert result.exit_code == 0 and f"t2v data {command} " in result.output


def test_shapes_of_two_sizes_and_two_rates(tmp_path):
    result = CliRunner().invoke(cli, ["data", "shapes", str(tmp_path / "m"), "--num", "4", "--frames", "3",
                                      "--size", "64", "--size", "96x64", "--fps", "8", "--fps", "16"])
    assert result.exit_code == 0, result.output
    assert "64x64, 96x64 at 8, 16 fps" in result.output
    rows = [json.loads(line) for line in (tmp_path / "m" / "index.jsonl").read_text().splitlines()]
    assert [(row["size"], row["fps"]) for row in rows] == [([64, 64], 8.0), ([64, 64], 16.0), ([64, 96], 8.0),
                                                          ([64, 96], 16.0)]


def listing(root) -> dict[str, bytes]:
    """Every entry under `root`: relative path → bytes (b"" for a folder)."""
    return {str(path.relative_to(root)): b"" if path.is_dir() else path.read_bytes() for path in root.rglob("*")}


def test_shapes_bad_sizes_create_nothing(tmp_path, monkeypatch, capsys):
    for size in ("7x9", "63x64", "64x33", "8", "14x16"):
        code, stdout, err = run_main(["data", "shapes", str(tmp_path / "new" / "shapes"), "--num", "2", "--size", "64",
                                      "--size", size], monkeypatch, capsys)
        assert code == 2 and err.count("\n") == 1 and "must be even" in err and "at least 16" in err, size
        assert err.startswith(f"Error: size {size if 'x' in size else size + 'x' + size} (WxH)")
        assert stdout == ""  # nothing announced, nothing written
    assert list(tmp_path.iterdir()) == []


def test_shapes_never_mixes_into_an_existing_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "shapes"
    assert run_main(["data", "shapes", str(out), "--num", "3", "--frames", "2", "--size", "32"], monkeypatch,
                    capsys)[0] == 0
    before = listing(out)
    code, stdout, err = run_main(["data", "shapes", str(out), "--num", "2", "--frames", "2", "--size", "32"],
                                 monkeypatch, capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "already holds a shapes dataset: choose another folder, or pass --overwrite to replace it whole" in err
    assert listing(out) == before
    code, _, err = run_main(["data", "shapes", str(out), "--num", "2", "--frames", "2", "--size", "32", "--seed", "4",
                             "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["00000.mp4", "00001.mp4"]  # no stale third clip
    assert len((out / "index.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]  # no temporary or older copy left beside it
    # a folder the command did not write is never replaced, even with --overwrite
    mine = tmp_path / "mine"
    (mine / "clips").mkdir(parents=True)
    (mine / "clips" / "a.mp4").write_bytes(b"precious")
    (mine / "index.jsonl").write_text('{"path": "clips/a.mp4", "caption": "mine"}\n')  # a prepared index
    for extra in ([], ["--overwrite"]):
        code, _, err = run_main(["data", "shapes", str(mine), "--num", "1", *extra], monkeypatch, capsys)
        assert code == 2 and "did not write (it has no .t2v-dataset marker (a prepared index" in err
        assert "never replaces it" in err and err.count("\n") == 1
    assert (mine / "clips" / "a.mp4").read_bytes() == b"precious"
    (mine / "index.jsonl").unlink()
    code, _, err = run_main(["data", "shapes", str(mine), "--num", "1", "--overwrite"], monkeypatch, capsys)
    assert code == 2 and "did not write (it holds 'clips'): choose a new or empty folder" in err
    assert (mine / "clips" / "a.mp4").read_bytes() == b"precious"
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(["data", "shapes", str(tmp_path / "empty"), "--num", "1", "--frames", "2", "--size", "32"],
                            monkeypatch, capsys)
    assert code == 0, err  # an empty folder is as good as a new one


def test_shapes_failure_leaves_nothing(tmp_path, monkeypatch):
    from t2v.recipes.shapes import dataset

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset, "write_video", fail)
    result = CliRunner().invoke(cli, ["data", "shapes", str(tmp_path / "shapes"), "--num", "2", "--size", "32"])
    assert isinstance(result.exception, RuntimeError)
    assert list(tmp_path.iterdir()) == []
