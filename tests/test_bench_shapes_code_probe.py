"""bench/shapes_code_probe.py: the probe learns what its features hold, and the report covers every attribute."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import load_bench, tiny_model


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        yield load_bench("shapes_code_probe", patch)


def test_the_probe_reads_features_that_hold_the_label_and_not_noise(bench):
    labels = torch.arange(400) % 4
    informative = torch.nn.functional.one_hot(labels, 4).float() + 0.1 * torch.randn(400, 4)
    assert bench.probe_accuracy(informative, labels, train=300, epochs=20, seed=0) == 1.0
    noise = torch.randn(400, 4)
    assert bench.probe_accuracy(noise, labels, train=300, epochs=20, seed=0) < 0.5


def test_report_of_a_tiny_tokenizer(bench, tmp_path, capsys):
    model = tiny_model()
    directory = model.save_pretrained(tmp_path / "tok")
    out = tmp_path / "probe.json"
    report = bench.main([str(directory), "--train", "40", "--test", "20", "--epochs", "2", "--out", str(out)])
    assert set(report["attributes"]) == {"shape", "color"}
    assert report["attributes"]["shape"]["chance"] == 0.25 and report["attributes"]["color"]["chance"] == 0.125
    for row in report["attributes"].values():
        assert 0 <= row["probe"] <= 1 and 0 <= row["decoded"] <= 1
    assert json.loads(out.read_text()) == report and "probe on codes" in capsys.readouterr().out
