"""Shapes evaluation helpers: caption selection, the reconstruction ceiling."""
from __future__ import annotations

from conftest import tiny_model
from t2v.recipes.shapes.dataset import captions_of_split
from t2v.recipes.shapes.evaluate import eval_captions, evaluate_reconstructions


def test_eval_captions_are_seeded_cover_the_split_and_cycle():
    heldout = {c.text for c in captions_of_split("heldout")}
    chosen = eval_captions("heldout", 2 * len(heldout), seed=0)
    assert chosen == eval_captions("heldout", 2 * len(heldout), seed=0) != eval_captions("heldout", 64, seed=1)
    assert set(chosen) == heldout and chosen[: len(heldout)] == chosen[len(heldout):]


def test_reconstruction_ceiling_scores_each_split(tmp_path):
    reports = evaluate_reconstructions(tiny_model(), num=2, work_dir=tmp_path, frames=5, size=(16, 16))
    assert set(reports) == {"seen", "heldout"}
    assert all(report["num"] == 2 for report in reports.values())
    assert reports["seen"]["overall"] == 0.0  # an untrained tokenizer decodes noise, never the clip
