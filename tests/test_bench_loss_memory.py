"""bench/loss_memory.py at toy sizes: both losses agree and the chunked one keeps less than the full logits."""
from __future__ import annotations

from conftest import load_bench


def test_loss_memory_bench_compares_both_losses(tmp_path, monkeypatch):
    bench = load_bench("loss_memory", monkeypatch)
    report = bench.main(["--ids", "4096", "--codes", "4000", "--hidden", "32", "--out", str(tmp_path / "l.json")])
    full, chunked = report["rows"]
    assert (full["method"], chunked["method"]) == ("full", "chunked")
    assert abs(full["loss"] - chunked["loss"]) < 1e-4
    assert chunked["peak_mib"] < full["peak_mib"] / 2  # 4,096 × 4,000 fp32 logits: 62.5 MiB, and their gradient
    assert (tmp_path / "l.json").is_file()
