"""bench/text_encoder.py at toy sizes: two shapes runs sharing the tokenizer and the shards, one reading a tiny T5."""
from __future__ import annotations

import json

from conftest import load_bench
from test_recipe_run import toy_run_config


def test_the_encoder_run_shares_the_baselines_tokenizer_and_shards_and_reads_the_encoder(tmp_path, monkeypatch,
                                                                                          capsys):
    bench = load_bench("text_encoder", monkeypatch)
    monkeypatch.setattr(bench, "run_config", lambda quick: toy_run_config())
    out = tmp_path / "runs"
    bench.main(["--out", str(out), "--num", "2", "--json", str(tmp_path / "te.json")])
    report = json.loads((tmp_path / "te.json").read_text())
    assert list(report["scores"]) == ["caption tokenizer", "tiny T5 (frozen)"]
    assert all(scores["num"] == 2 for run in report["scores"].values() for scores in run.values())
    baseline, t5 = report["stage_seconds"]["caption tokenizer"], report["stage_seconds"]["tiny T5 (frozen)"]
    assert t5["tokenizer"] == baseline["tokenizer"] and t5["encode"] == baseline["encode"]  # shared, not rerun
    config = json.loads((out / "t5" / "generator" / "config.json").read_text())
    assert config["model"]["text_encoder"] == str((out / "tiny-t5").resolve())
    assert (out / "t5" / "pipeline" / "text_encoder" / "config.json").is_file()  # a self-contained pipeline
    assert not json.loads((out / "caption" / "generator" / "config.json").read_text())["model"].get("text_encoder")
    table = capsys.readouterr().out
    assert "| tiny T5 (frozen) | heldout |" in table and "| caption tokenizer | seen |" in table
    reused = tmp_path / "reused"  # a second bench starting from the first baseline's tokenizer and shards
    bench.main(["--out", str(reused), "--num", "2", "--json", str(tmp_path / "r.json"),
                "--reuse", str(out / "caption")])
    timings = json.loads((tmp_path / "r.json").read_text())["stage_seconds"]
    assert all(run["tokenizer"] == baseline["tokenizer"] for run in timings.values())
