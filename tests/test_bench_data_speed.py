"""bench/data_speed.py end to end in its --quick mode (tiny files, shards and presets): the JSON's keys and ratios."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "data_speed.py"


def test_bench_quick_writes_rates_and_ratios(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # the script imports its sibling train_speed.py
    spec = importlib.util.spec_from_file_location("data_speed_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
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
