"""Recipe lookup: a recipe name (`shapes`, …) or a path to a YAML/JSON config file → a typed stage config."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from t2v.generator.config import GeneratorTrainConfig
from t2v.core import config_io
from t2v.tokenizer.config import TokenizerTrainConfig

RECIPES = ("shapes", "ucf101", "msrvtt", "webvid", "kinetics", "folder")


def recipe_module(name: str) -> Any:
    """The module `t2v.recipes.<name>`; a clear error lists the known recipes."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} or give a path to a .yaml config")
    return importlib.import_module(f"t2v.recipes.{name}")


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
