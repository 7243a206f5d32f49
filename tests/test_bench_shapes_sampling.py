"""bench/shapes_sampling.py end to end on a random tiny pipeline: settings parse, rows and JSON."""
from __future__ import annotations

import argparse
import json

import pytest

from conftest import load_bench, tiny_pipeline


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        yield load_bench("shapes_sampling", patch)


def test_settings_parse_and_bad_ones_are_refused(bench):
    config = bench.parse_setting("3,1.0,0,0.9")
    assert (config.cfg_scale, config.temperature, config.top_k, config.top_p) == (3.0, 1.0, 0, 0.9)
    assert len(bench.DEFAULT_GRID) == 12 and len({bench.label(c) for c in bench.DEFAULT_GRID}) == 12
    for bad in ("3,1.0,0", "3,hot,0,1", "3,1.0,0,1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="cfg,temperature,top_k,top_p"):
            bench.parse_setting(bad)


def test_bench_scores_each_setting_on_the_same_captions(bench, text, tmp_path, capsys):
    directory = tiny_pipeline(text).save_pretrained(tmp_path / "pipeline")
    out = tmp_path / "sampling.json"
    bench.main([str(directory), "--num", "2", "--setting", "1,1.0,0,1", "--setting", "2,0.7,20,1", "--threads", "1",
                "--out", str(out)])
    report = json.loads(out.read_text())
    assert [row["sampling"]["cfg_scale"] for row in report["rows"]] == [1.0, 2.0]
    for row in report["rows"]:
        assert set(row["scores"]) == {"seen", "heldout"}
        assert all(row["scores"][split]["num"] == 2 and 0 <= row["scores"][split]["overall"] <= 1
                   for split in row["scores"])
    assert "cfg 2, T 0.7, top-k 20, top-p 1" in capsys.readouterr().out
