"""bench/sample_speed.py on a tiny grid: every strategy at every batch, passes per frame, speed-ups, JSON."""
from __future__ import annotations

import json

import pytest

from conftest import load_bench


def test_sample_speed_times_every_strategy_against_generate(tmp_path, monkeypatch, capsys):
    bench = load_bench("sample_speed", monkeypatch)
    out = tmp_path / "speed.json"
    report = bench.main(["--presets", "tiny", "--grid", "2", "2", "4", "--batches", "1", "3", "--fewer", "2", "8",
                         "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    batches = report["presets"]["tiny"]["batches"]
    assert set(batches) == {"1", "3"}
    one = batches["1"]
    assert set(one) == {"generate", "token", "token_cfg", "parallel_4", "parallel_4_cfg", "parallel_1",
                        "parallel_1_cfg", "uncached"}
    assert "uncached" not in batches["3"]
    assert [one[m]["passes_per_frame"] for m in ("token", "parallel_4", "parallel_1")] == [8, 4, 1]
    assert one["generate"]["over_generate"] == 1.0 and one["parallel_1"]["over_generate"] > 0
    assert "percent_of_bound" in one["token"] and "percent_of_bound" not in one["parallel_1"]
    for rows in batches.values():
        for row in rows.values():
            assert row["tokens_per_s"] > 0 and row["ms_per_latent_frame"] > 0
    assert batches["3"]["token"]["tokens_per_s"] == pytest.approx(3 * 16 / batches["3"]["token"]["seconds"], rel=1e-3)
    assert "| tiny | 3 | parallel_1_cfg | 1 |" in capsys.readouterr().out
