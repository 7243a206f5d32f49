"""bench/gpu_check.py --device cpu --quick: every part runs on the CPU and reports its figures."""
from __future__ import annotations

import json

from conftest import load_bench


def test_gpu_check_quick_runs_every_part_on_the_cpu(tmp_path, monkeypatch):
    gpu_check = load_bench("gpu_check", monkeypatch)
    load_bench("sample_speed", monkeypatch)  # imported by name from bench/
    monkeypatch.chdir(tmp_path)
    report = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "gpu_check.json")])
    assert report["failed"] == [], {name: part.get("error") for name, part in report["parts"].items()}
    parts = report["parts"]
    assert parts["peak"]["tflops_per_s"] > 0 and parts["peak"]["dtype"] == "float32"
    for name in ("tokenizer", "generator"):
        assert parts[name]["step_seconds"] > 0 and parts[name]["flops_per_step"] > 0, name
        assert parts[name]["mfu_percent"] > 0, name  # measured FLOPs over a measured peak (on a busy CPU, noisy)
    assert parts["sampling"]["tiny"]["1"]["token"]["tokens_per_s"] > 0
    assert set(parts["recipe"]["stages"]) == {"tokenizer", "encode", "generator", "pipeline", "eval"}
    assert json.loads((tmp_path / "gpu_check.json").read_text())["quick"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json"]  # nothing else written
