"""`t2v data shapes` and `t2v data check` through click's CliRunner."""
from __future__ import annotations

import json

from click.testing import CliRunner

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

    (out / rows[0]["path"]).write_bytes(b"broken")
    result = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "5/6 ok, 1 skipped"
    assert rows[0]["path"].split("/")[-1] in result.output and "unreadable" in result.output
    result = runner.invoke(cli, ["data", "check", str(out / "index.jsonl"), "--frames", "6"])
    assert result.output.splitlines()[0] == "0/6 ok, 6 skipped" and "too short: decoded 5 frames" in result.output


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
