"""`t2v recipe run shapes`: every stage end to end at toy sizes, and a second run resumes instead of redoing."""
from __future__ import annotations

import dataclasses
import json

from conftest import run_main, tiny_config
from t2v.generator.config import GeneratorConfig
from t2v.generator.pipeline import TextToVideo
from t2v.recipes.shapes import generator_config, tokenizer_config
from t2v.recipes.evaluation import EvalConfig
from t2v.recipes.shapes.run import MULTI_RATES, MULTI_SIZES, RecipeRunConfig, multi_config, run_config, run_recipe
from t2v.tokenizer.shards import ShardReader


def toy_run_config() -> RecipeRunConfig:
    tokenizer = tokenizer_config("quick")
    tokenizer = dataclasses.replace(
        tokenizer, model=tiny_config(), steps=3, image_steps=1, decoder_steps=1, image_batch_size=2, batch_size=1,
        log_every=1, eval_every=3, checkpoint_every=3, num_samples=1,
        data=dataclasses.replace(tokenizer.data, num_frames=5, size=(16, 16), eval_clips=1))
    generator = dataclasses.replace(
        generator_config("quick"), steps=2, batch_size=2, log_every=1, checkpoint_every=2, sample_every=0,
        model=GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128, max_text_len=12))
    generator = dataclasses.replace(generator, data=dataclasses.replace(generator.data, window=2))
    return RecipeRunConfig(tokenizer, generator, num_clips=8, long_clips=2, long_frames=9, heldout_clips=2,
                           eval=EvalConfig(num=2, batch=2, save_videos=1))


def test_recipe_run_makes_a_scored_pipeline_and_resumes(tmp_path):
    lines: list[str] = []
    reports = run_recipe(tmp_path / "run", toy_run_config(), log=lines.append)
    assert {split: report["num"] for split, report in reports.items()} == {"seen": 2, "heldout": 2}
    out = tmp_path / "run"
    timings = json.loads((out / "run.json").read_text())
    assert list(timings) == ["tokenizer", "encode", "generator", "pipeline", "eval"]
    assert sorted(path.name for path in out.iterdir()) == ["eval", "generator", "pipeline", "run.json", "tokenizer",
                                                           "tokens"]  # no video files: every clip was drawn
    rows = ShardReader.open(out / "tokens").rows
    assert sorted(row["shape"][0] for row in rows) == [2] * 10 + [3] * 2  # the short clips and the 9-frame long ones
    assert [row["split"] for row in rows].count("heldout") == 2
    pipeline = TextToVideo.from_pretrained(out / "pipeline")
    assert pipeline.info.size == (16, 16) and pipeline.info.frames == 5
    assert pipeline("a red circle moving left slowly").shape == (1, 5, 16, 16, 3)
    assert json.loads((out / "eval" / "eval.json").read_text())["scores"]["seen"]["num"] == 2
    lines.clear()
    run_recipe(out, toy_run_config(), log=lines.append)  # everything but the evaluation is done already
    skipped = [line.split("]")[0][1:] for line in lines if "already done" in line]
    assert skipped == ["tokenizer", "encode", "generator", "pipeline"]


def test_multi_variant_trains_two_sizes_and_two_rates_and_scores_each(tmp_path):
    config = multi_config(dataclasses.replace(toy_run_config(), long_clips=0), sizes=[(16, 16), (16, 24)],
                          rates=[8, 16])
    reports = run_recipe(tmp_path, config, log=lambda line: None)
    reader = ShardReader.open(tmp_path / "tokens")
    assert reader.meta["latent_grids"] == [[2, 2], [2, 3]]
    assert {(reader.grid(i), reader.fps(i)) for i in range(len(reader))} == {
        ((2, 2), 8.0), ((2, 2), 16.0), ((2, 3), 8.0), ((2, 3), 16.0)}
    pipeline = TextToVideo.from_pretrained(tmp_path / "pipeline")
    assert pipeline.trained_sizes == [(16, 16), (16, 24)] and pipeline.trained_rates == [8.0, 16.0]
    assert pipeline("a red circle moving left slowly", size=(16, 24), fps=16).shape == (1, 5, 16, 24, 3)
    assert {"seen 24x16 16fps", "heldout 16x16 8fps", "24x16", "16fps"} <= set(reports)


def test_recipe_configs_and_cli_help(monkeypatch, capsys):
    quick, full = run_config(quick=True), run_config(quick=False)
    assert quick.tokenizer.steps < full.tokenizer.steps and quick.generator.steps < full.generator.steps
    assert quick.num_clips < full.num_clips
    multi = run_config(quick=True, variant="multi")
    assert multi.sizes == MULTI_SIZES == [(64, 64), (64, 96)] and multi.rates == MULTI_RATES == [8.0, 16.0]
    assert multi.eval.rates == MULTI_RATES and multi.eval.sizes == MULTI_SIZES
    assert dataclasses.replace(multi.tokenizer, name="shapes") == quick.tokenizer  # one tokenizer codes every size
    assert quick.sizes == [] and quick.tokenizer.data.drawn  # the existing variants are unchanged
    code, out, _ = run_main(["recipe", "run", "--help"], monkeypatch, capsys)
    assert code == 0 and "--quick" in out and "--variant" in out
    code, _, err = run_main(["recipe", "run", "nope", "--out", "x"], monkeypatch, capsys)
    assert code == 2 and "nope" in err
