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


class TruePipeline:
    """Stands in for a `TextToVideo` that draws each caption's true clip at the size and rate asked for."""

    def __init__(self) -> None:
        from t2v.generator.pipeline import PipelineInfo

        self.info = PipelineInfo(fps=8.0, size=(64, 64), frames=17)
        self.calls: list[tuple] = []

    def __call__(self, captions, options):
        import numpy as np

        from t2v.recipes.shapes.dataset import render_clip

        size, fps = options.size, options.fps
        self.calls.append((tuple(size), fps))
        return np.stack([render_clip(c, options.frames, size, np.random.default_rng([options.seed, i]), fps)
                         for i, c in enumerate(captions)])


def test_eval_per_variant_scores_each_size_and_rate_with_the_rate_told_to_the_verifier(tmp_path):
    import json

    from t2v.recipes.evaluation import EvalConfig
    from t2v.recipes.shapes.evaluate import evaluate_pipeline

    pipeline = TruePipeline()
    config = EvalConfig(num=3, batch=3, splits=("seen", "heldout"), sizes=[(64, 64), (64, 96)], rates=[8, 16],
                        save_videos=1)
    reports = evaluate_pipeline(pipeline, config, tmp_path)
    variants = ["64x64 8fps", "64x64 16fps", "96x64 8fps", "96x64 16fps"]
    assert list(reports) == ["seen", "heldout", *(f"{s} {v}" for s in ("seen", "heldout") for v in variants),
                             "64x64", "96x64", "8fps", "16fps"]
    assert all(report["overall"] == 1.0 for report in reports.values())  # true clips pass at 16 fps too
    assert reports["seen"]["num"] == 12 and reports["16fps"]["num"] == 12 and reports["seen 96x64 16fps"]["num"] == 3
    assert set(pipeline.calls) == {((64, 64), 8.0), ((64, 64), 16.0), ((64, 96), 8.0), ((64, 96), 16.0)}
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert {(tuple(v["size"]), v["fps"]) for v in saved["videos"]} == set(pipeline.calls)
    assert (tmp_path / "eval.txt").read_text().count("\n") == 1 + len(reports)
    assert len(list(tmp_path.glob("seen_96x64_16fps_000_pass_*.gif"))) == 1
    single = evaluate_pipeline(TruePipeline(), EvalConfig(num=2, splits=("seen",)))
    assert list(single) == ["seen"]  # one variant: a row per split, as before


def test_cli_eval_per_variant_table_and_untrained_size(text, tmp_path, monkeypatch, capsys):
    from conftest import run_main, tiny_pipeline

    pipeline_dir = tiny_pipeline(text).save_pretrained(tmp_path / "pipeline")
    code, stdout, err = run_main(["eval", "shapes", str(pipeline_dir), "--num", "1", "--split", "seen",
                                  "--per-variant", "--out", str(tmp_path / "eval")], monkeypatch, capsys)
    assert code == 0, err
    for row in ("seen 24x16 16fps", "seen 16x16 8fps", "24x16", "8fps"):
        assert f"\n{row} " in stdout
    assert "eval shapes: 100%" in err and "4/4 [" in err  # the progress bar, on stderr: 1 video x 4 conditions
    code, quiet_stdout, err = run_main(["eval", "shapes", str(pipeline_dir), "--num", "1", "--split", "seen", "-q",
                                        "--out", str(tmp_path / "eval")], monkeypatch, capsys)
    assert code == 0 and "eval shapes" not in err and "\nseen " in quiet_stdout
    code, _, err = run_main(["eval", "shapes", str(pipeline_dir), "--num", "1", "--size", "32x16"], monkeypatch,
                            capsys)
    assert code == 2 and "size 32x16 was never trained" in err and err.count("\n") == 1
