"""The recipes and what each can do: a recipe name (`shapes`, …) or a YAML/JSON config file → a typed stage config;
a recipe name → its variants, its end-to-end run, its evaluation.

Recipes are found, not listed: every subpackage of `t2v.recipes` whose `__init__.py` defines the recipe interface
is one, so adding a folder adds a recipe. The interface, by name:
- `tokenizer_config(variant="default")`, `generator_config(variant="default")`: the typed stage configs;
- `VARIANTS`: name → `t2v.recipes.Variant`, its named config derivations (`--variant` of the training commands).

What more a recipe can do is the modules it has (looked up without importing them):
- `run`, it runs end to end (`t2v recipe run`): `VARIANTS` (name → a function deriving its run config; the first
  line of the function's docstring is its help), `run_config(quick, variant)` (a config with `resolve(out)`: the
  same with every stage's paths under `out`), `LAYOUT` (entry under `out` → what it holds) and
  `run_recipe(out, config, log, device, dtype)`;
- `evaluate`, it scores pipelines (`t2v eval`): `evaluate_pipeline(pipeline, config, out_dir, progress)` → reports,
  where `config` is the dataclass its signature names (fields num, splits, seed, sizes, rates, sampling, whose
  `splits` default lists the recipe's splits; `conditions(pipeline)`: the (size, rate) pairs scored), and
  `format_table(reports)`.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import typing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import t2v.recipes
from t2v.core import config_io
from t2v.generator.config import GeneratorTrainConfig
from t2v.tokenizer.config import TokenizerTrainConfig

INTERFACE = ("tokenizer_config", "generator_config", "VARIANTS")


def discover() -> tuple[str, ...]:
    """The names of the subpackages of `t2v.recipes` that define the recipe interface, sorted."""
    names = []
    for found in pkgutil.iter_modules(t2v.recipes.__path__):
        if found.ispkg and all(hasattr(importlib.import_module(f"t2v.recipes.{found.name}"), name)
                               for name in INTERFACE):
            names.append(found.name)
    return tuple(sorted(names))


def has_module(recipe: str, module: str) -> bool:
    """Whether recipe `recipe` has the module `module` (found without importing it)."""
    return importlib.util.find_spec(f"t2v.recipes.{recipe}.{module}") is not None


RECIPES = discover()
RUNNABLE = tuple(name for name in RECIPES if has_module(name, "run"))  # they run end to end
EVALUABLE = tuple(name for name in RECIPES if has_module(name, "evaluate"))  # they score pipelines


def recipe_module(name: str) -> Any:
    """The module `t2v.recipes.<name>`; a clear error lists the known recipes."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} or give a path to a .yaml config")
    return importlib.import_module(f"t2v.recipes.{name}")


def variants(recipe: str) -> dict[str, str]:
    """The variants of `recipe`'s stage configs: name → summary."""
    return {name: variant.summary for name, variant in recipe_module(recipe).VARIANTS.items()}


def tokenizer_config(recipe: str, variant: str = "default") -> TokenizerTrainConfig:
    """The tokenizer training config of `recipe` (a recipe name or a YAML/JSON config file)."""
    if Path(recipe).suffix in (".yaml", ".yml", ".json"):
        return config_io.load(TokenizerTrainConfig, recipe)
    return recipe_module(recipe).tokenizer_config(variant)


def generator_config(recipe: str, variant: str = "default") -> GeneratorTrainConfig:
    """The generator training config of `recipe` (a recipe name or a YAML/JSON config file)."""
    if Path(recipe).suffix in (".yaml", ".yml", ".json"):
        return config_io.load(GeneratorTrainConfig, recipe)
    return recipe_module(recipe).generator_config(variant)


def run_module(recipe: str) -> ModuleType:
    """`recipe`'s `run` module; a recipe that cannot run end to end is a one-line error naming those that can."""
    if recipe not in RUNNABLE:
        what = f"recipe {recipe} cannot run end to end" if recipe in RECIPES else f"unknown recipe {recipe!r}"
        raise ValueError(f"{what}: the recipes that run end to end are {', '.join(RUNNABLE)} (those with a run.py)")
    return importlib.import_module(f"t2v.recipes.{recipe}.run")


def run_variants(recipe: str) -> dict[str, str]:
    """The variants of `recipe`'s run config: name → summary (the first line of the function's docstring)."""
    return {name: first_line(derive.__doc__) for name, derive in run_module(recipe).VARIANTS.items()}


@dataclass(frozen=True)
class Evaluation:
    """A recipe's evaluation (its `evaluate` module): the config type, the function that scores a pipeline, the
    table of its reports, and a summary (the first line of the module's docstring)."""

    recipe: str
    config: type
    evaluate: Callable[..., dict[str, dict]]
    format_table: Callable[[dict[str, dict]], str]
    summary: str

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the evaluation scores by default (and the only ones it knows)."""
        return tuple(self.config().splits)


def evaluation(recipe: str) -> Evaluation:
    """`recipe`'s evaluation; a recipe without one is a one-line error naming those with one."""
    if recipe not in EVALUABLE:
        what = f"recipe {recipe} has no evaluation" if recipe in RECIPES else f"unknown recipe {recipe!r}"
        raise ValueError(f"{what}: the recipes with one are {', '.join(EVALUABLE)} (those with an evaluate.py)")
    module = importlib.import_module(f"t2v.recipes.{recipe}.evaluate")
    evaluate = module.evaluate_pipeline
    return Evaluation(recipe, typing.get_type_hints(evaluate)["config"], evaluate, module.format_table,
                      first_line(module.__doc__))


def first_line(text: str | None) -> str:
    """The first line of a docstring, without its final full stop."""
    return (text or "").strip().splitlines()[0].rstrip(".") if (text or "").strip() else ""
