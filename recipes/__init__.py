"""Dataset recipes: each prepares one dataset and holds typed config functions for each stage.

A recipe is a subpackage found by `t2v.recipes.registry` (no list to keep): its `__init__.py` defines
`tokenizer_config(variant)`, `generator_config(variant)` and `VARIANTS`. A variant is a recipe's named config
derivation: it copies the default configs and changes some values (torchtitan's copy-and-modify). `VARIANTS`, one
dict of name → `Variant` built once, is the one source of the names `--variant` takes and that help and errors list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

from t2v.generator.config import GeneratorTrainConfig
from t2v.tokenizer.config import TokenizerTrainConfig

T = TypeVar("T")


def unchanged(config: T) -> T:
    """The derivation of a stage a variant leaves alone."""
    return config


@dataclass(frozen=True)
class Variant:
    """A named derivation of a recipe's stage configs: `tokenizer` and `generator` each take the recipe's default
    config of their stage and return the variant's; `summary` is the line help and errors show."""

    summary: str
    tokenizer: Callable[[TokenizerTrainConfig], TokenizerTrainConfig] = unchanged
    generator: Callable[[GeneratorTrainConfig], GeneratorTrainConfig] = unchanged


DEFAULT = Variant("the recipe's configs as written")


def choose(variants: Mapping[str, T], recipe: str, name: str) -> T:
    """`variants[name]`; an unknown name is a one-line error listing the names of `recipe`'s variants."""
    if name not in variants:
        raise ValueError(f"unknown variant {name!r} of recipe {recipe}: choose one of {', '.join(variants)}")
    return variants[name]
