"""bench/data_scale.py end to end in its --quick mode (tiny indexes and shards, cases in forked children, 8 clips):
the JSON's keys, the memory rows of every case and the three loaders' rates."""
from __future__ import annotations

import json

from conftest import load_bench


def test_bench_quick_writes_memory_and_loader_rates(tmp_path, monkeypatch, capsys):
    bench = load_bench("data_scale", monkeypatch)
    out = tmp_path / "data_scale.json"
    bench.main(["--quick", "--sizes", "100", "400", "--clips", "6", "--workers", "0", "--out", str(out)])
    report = json.loads(out.read_text())
    assert {"machine", "torch", "load_avg_before", "quick", "sizes", "memory", "loaders",
            "pipeline_within_1_2x"} <= set(report)
    assert [row["case"] for row in report["memory"]] == list(bench.CASES)
    for row in report["memory"]:
        assert set(row["peak_rss_mb"]) == {"100", "400"} and all(peak > 0 for peak in row["peak_rss_mb"].values())
        assert row["ratio"] > 0 and "within_1_2x" in row
    assert [row["clips"] for row in report["loaders"]] == [6, 6, 6]
    assert all(row["clips_per_s"] > 0 for row in report["loaders"])
    assert "peak RSS" in capsys.readouterr().out
