"""The stills evaluation: its captions, the motion check's scores of true and of still videos, its recipe run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.generator.pipeline import PipelineInfo
from t2v.recipes.evaluation import EvalConfig
from t2v.recipes.stills.dataset import KINDS, Caption, render_clip
from t2v.recipes.stills.evaluate import eval_captions, evaluate_pipeline, format_table
from t2v.recipes.stills.photos import split_of


def test_eval_captions_are_seeded_cycle_the_kinds_and_keep_to_their_split():
    chosen = eval_captions("heldout", 27, seed=0)
    assert chosen == eval_captions("heldout", 27, seed=0) != eval_captions("heldout", 27, seed=1)
    parsed = [Caption.parse(text) for text in chosen]
    assert [caption.kind for caption in parsed] == [*KINDS] * 3
    assert {split_of(name) for c in parsed for name in (c.photo, c.second) if name} == {"heldout"}
    assert {split_of(Caption.parse(text).photo) for text in eval_captions("seen", 18, seed=0)} == {"seen"}
    with pytest.raises(ValueError, match="unknown split 'train'"):
        eval_captions("train", 1, seed=0)


class ClipPipeline:
    """Stands in for a `TextToVideo`: each caption's true clip, or (`still`) its first frame repeated."""

    def __init__(self, still: bool = False) -> None:
        self.info = PipelineInfo(fps=8.0, size=(48, 48), frames=17)
        self.still = still

    def __call__(self, captions, options):
        clips = np.stack([render_clip(c, options.frames, options.size, np.random.default_rng([options.seed, i]),
                                      options.fps) for i, c in enumerate(captions)])
        return np.repeat(clips[:, :1], options.frames, axis=1) if self.still else clips


def test_true_clips_pass_and_frozen_ones_pass_only_the_still_shots(tmp_path):
    config = EvalConfig(num=9, batch=5, frames=17, save_videos=1)
    reports = evaluate_pipeline(ClipPipeline(), config, tmp_path)
    assert list(reports) == ["seen", "heldout"]
    assert all(report["overall"] == 1.0 and report["direction"] == 1.0 and report["num"] == 9
               for report in reports.values())
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert [video["kind"] for video in saved["videos"]] == [*KINDS] * 2
    assert len(list(tmp_path.glob("heldout_000_pass_a_still_shot_of_*.gif"))) == 1
    frozen = evaluate_pipeline(ClipPipeline(still=True), config)
    for report in frozen.values():  # one still shot in nine passes; no directed kind does
        assert report["still"] == 1.0 and report["pan"] == 0.0 and report["direction"] == 0.0
        assert report["overall"] == pytest.approx(1 / 9)
    table = format_table(frozen).splitlines()
    assert table[0].split()[:3] == ["split", "still", "pan"] and table[1].split()[-1] == "9"
    assert table[1].split()[-2] == "0.0"  # the direction's ± of a score of 0


def test_the_stills_recipe_runs_end_to_end_with_its_own_evaluation():
    from t2v.recipes.registry import RUNNABLE, evaluation, run_module

    assert "stills" in RUNNABLE and evaluation("stills").evaluate is evaluate_pipeline
    run = run_module("stills")
    config = run.run_config(quick=False)
    assert config.long_clips == 0 and config.eval.num == 256 and config.clip_sizes == [(64, 64)]
    assert config.tokenizer.data.size == (128, 128)  # the tokenizer trains at 128, codes 64x64 clips too
    assert run.run_config(quick=False, variant="size128").clip_sizes == [(128, 128)]
    clips, total = run.run_config(quick=True).generator_clips()
    assert total == 664
    fields, clip = next(clips)
    assert clip.shape == (17, 64, 64, 3) and fields["split"] == "seen"
