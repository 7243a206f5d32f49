"""bench/data_speed.py end to end in its --quick mode (tiny files, shards and presets): the JSON's keys and ratios."""
from __future__ import annotations

import json

from conftest import load_bench


def test_bench_quick_writes_rates_and_ratios(tmp_path, monkeypatch, capsys):
    bench = load_bench("data_speed", monkeypatch)
    out = tmp_path / "data_speed.json"
    bench.main(["--quick", "--tokenizer-clips-per-s", "1e6", "--generator-tokens-per-s", "0.5", "--out", str(out)])
    report = json.loads(out.read_text())
    assert {"machine", "torch", "load_avg_before", "quick", "settings", "steps", "loaders"} <= set(report)
    assert report["quick"] and set(report["steps"]) == {"tokenizer", "generator"}
    for step in report["steps"].values():
        assert step["here"] > 0 and step["given"] > 0
    rows = report["loaders"]
    assert [(row["loader"].split()[0], row["num_workers"]) for row in rows] == [
        ("tokenizer", 0), ("tokenizer", 1), ("tokenizer", 2), ("generator", 0)]
    for row in rows:
        assert row["rate"] > 0 and row["ratio_here"] > 0 and "keeps_up_here" in row
    assert not any(row["keeps_up_given"] for row in rows[:3]) and rows[3]["keeps_up_given"]  # the given figures
    printed = capsys.readouterr().out
    assert "loader/step" in printed and "!" in printed and str(out) in printed
