"""The recipe registry: recipes are discovered folders, their variants come from one dict, and `t2v recipe run` /
`t2v eval` dispatch through it (a recipe that cannot run or has no evaluation is a one-line error), `--dry-run`."""
from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest
import yaml

import t2v.recipes
from conftest import run_main
from t2v.core import config_io
from t2v.recipes import Variant, registry, shapes
from t2v.recipes.shapes import run as shapes_run

RECIPES_DIR = Path(t2v.recipes.__file__).parent


def folders_with(name: str) -> tuple[str, ...]:
    """The recipe folders (packages under recipes/) that hold the file `name`."""
    return tuple(sorted(p.name for p in RECIPES_DIR.iterdir()
                        if (p / "__init__.py").is_file() and (p / name).is_file()))


def test_discovery_finds_every_recipe_folder():
    assert registry.RECIPES == folders_with("__init__.py") == registry.discover()
    assert {"shapes", "ucf101", "msrvtt", "webvid", "kinetics", "folder"} <= set(registry.RECIPES)
    assert registry.RUNNABLE == folders_with("run.py") and "shapes" in registry.RUNNABLE
    assert registry.EVALUABLE == folders_with("evaluate.py") and "shapes" in registry.EVALUABLE


def test_a_new_folder_with_the_interface_is_a_recipe(tmp_path, monkeypatch):
    (tmp_path / "mars").mkdir()
    (tmp_path / "mars" / "__init__.py").write_text(
        "from t2v.recipes import DEFAULT\nVARIANTS = {'default': DEFAULT}\n"
        "def tokenizer_config(variant='default'): ...\ndef generator_config(variant='default'): ...\n")
    (tmp_path / "mars" / "run.py").write_text("")
    (tmp_path / "helpers").mkdir()  # a package without the interface is not a recipe
    (tmp_path / "helpers" / "__init__.py").write_text("")
    monkeypatch.setattr(t2v.recipes, "__path__", [*t2v.recipes.__path__, str(tmp_path)])
    importlib.invalidate_caches()
    try:
        assert "mars" in registry.discover() and "helpers" not in registry.discover()
        assert registry.has_module("mars", "run") and not registry.has_module("mars", "evaluate")
    finally:
        for name in ("t2v.recipes.mars", "t2v.recipes.helpers"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("name", registry.RECIPES)
def test_variants_are_one_dict_of_named_derivations(name):
    module = registry.recipe_module(name)
    names = list(module.VARIANTS)
    assert list(registry.variants(name)) == names and names[:2] == ["default", "quick"]
    assert registry.tokenizer_config(name, "default") == module.tokenizer_config()
    quick = module.VARIANTS["quick"]
    assert registry.tokenizer_config(name, "quick") == quick.tokenizer(module.tokenizer_config())
    assert registry.generator_config(name, "quick") == quick.generator(module.generator_config())
    with pytest.raises(ValueError, match=f"unknown variant 'huge' of recipe {name}: choose one of {', '.join(names)}$"):
        registry.generator_config(name, "huge")


def test_a_variant_added_to_the_dict_is_accepted_and_listed(monkeypatch):
    monkeypatch.setitem(shapes.VARIANTS, "short", Variant("five steps", tokenizer=lambda c: dataclasses.replace(
        c, steps=5, image_steps=1, decoder_steps=1)))
    assert registry.tokenizer_config("shapes", "short").steps == 5
    assert registry.generator_config("shapes", "short") == registry.generator_config("shapes")  # left alone
    assert registry.variants("shapes")["short"] == "five steps"
    with pytest.raises(ValueError, match="choose one of default, quick, frame, masked, short"):
        registry.tokenizer_config("shapes", "huge")


def test_run_variants_and_the_help_that_lists_them(monkeypatch, capsys):
    assert registry.run_variants("shapes") == {
        "default": "64x64 clips at 8 fps",
        "multi": "Clips at 64x64 and 96x64 (WxH), each at 8 and 16 fps; the pipeline generates each size and rate",
        "frame": "The default run with a generator that predicts each latent frame in one forward pass",
        "masked": "The default run with a generator that draws each latent frame in 2 passes, masked (MaskGIT-style)"}
    assert shapes_run.run_config(True, "multi") == shapes_run.multi(shapes_run.run_config(True))
    with pytest.raises(ValueError, match="unknown variant 'huge' of recipe run shapes: choose one of default, multi"):
        shapes_run.run_config(False, "huge")
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_main(["recipe", "run", "--help"], monkeypatch, capsys)
    assert code == 0 and "--dry-run" in out
    assert "shapes default  64x64 clips at 8 fps" in out and "shapes multi    Clips at 64x64" in out


def test_recipe_run_dispatches_to_the_recipe_run_module(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(shapes_run, "run_recipe", lambda out, config, log, **where: calls.append((out, config)))
    out = tmp_path / "run"
    code, stdout, err = run_main(["recipe", "run", "shapes", "--out", str(out), "--quick", "--variant", "multi"],
                                 monkeypatch, capsys)
    assert code == 0, err
    assert stdout.splitlines()[0] == f"recipe shapes multi (quick) → {out}"
    assert calls == [(out, shapes_run.run_config(True, "multi"))]


@pytest.mark.parametrize("args, message", [
    (["recipe", "run", "ucf101", "--out", "OUT"], ("recipe ucf101 cannot run end to end: the recipes that run end to "
                                                   "end are shapes")),
    (["recipe", "run", "nope", "--out", "OUT"], "unknown recipe 'nope': the recipes that run end to end are shapes"),
    (["recipe", "run", "shapes", "--out", "OUT", "--variant", "quick"], "unknown variant 'quick' of recipe run shapes"),
    (["eval", "webvid", "PIPELINE"], "recipe webvid has no evaluation: the recipes with one are shapes"),
    (["eval", "nope", "PIPELINE"], "unknown recipe 'nope': the recipes with one are shapes"),
])
def test_a_recipe_that_cannot_do_it_is_a_one_line_error(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"Error: {message}")
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_dry_run_prints_the_resolved_configs_and_layout_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shapes_run, "run_recipe", lambda *args, **kwargs: pytest.fail("a dry run ran the recipe"))
    out = tmp_path / "run"
    code, stdout, err = run_main(["recipe", "run", "shapes", "--out", str(out), "--variant", "multi", "--dry-run"],
                                 monkeypatch, capsys)
    assert code == 0, err
    assert list(tmp_path.iterdir()) == []
    lines = stdout.splitlines()
    assert lines[0] == f"recipe shapes multi → {out}"
    layout = lines.index("output layout:")
    resolved = shapes_run.run_config(False, "multi").resolve(out)
    assert yaml.safe_load("\n".join(lines[1:layout])) == config_io.to_dict(resolved)
    assert resolved.tokenizer.data.drawn and not resolved.tokenizer.data.index  # clips drawn in memory: no data/
    assert resolved.generator.data.shards == str(out / "tokens")
    assert resolved.generator.tokenizer_dir == str(out / "tokenizer")
    assert [line.split()[0] for line in lines[layout + 1:]] == [f"{out}/{entry}" for entry in shapes_run.LAYOUT]


def test_eval_commands_come_from_the_registry_with_the_same_options(monkeypatch, capsys):
    evaluation = registry.evaluation("shapes")
    from t2v.recipes.evaluation import EvalConfig
    from t2v.recipes.shapes.evaluate import evaluate_pipeline

    assert evaluation.config is EvalConfig and evaluation.evaluate is evaluate_pipeline
    assert evaluation.splits == ("seen", "heldout")
    from t2v.cli.evaluate import evaluate

    command = evaluate.get_command(None, "shapes")
    assert [option for param in command.params for option in param.opts] == [
        "pipeline_dir", "--num", "--split", "--out", "--size", "--fps", "--per-variant", "--cfg", "--temperature",
        "--top-k", "--top-p", "--steps", "--device", "--dtype", "--seed", "-q", "--quiet"]
    code, out, _ = run_main(["eval", "--help"], monkeypatch, capsys)
    assert code == 0 and "shapes" in out
