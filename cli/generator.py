"""`t2v generator …`: train the text-to-video transformer. Parses, prints what it will do, calls one function."""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.runs import resolve_training, training_options


@click.group()
def generator() -> None:
    """Train the generator (the transformer that writes video codes for a caption) on token shards."""


@generator.command()
@click.argument("recipe")
@click.option("--shards", "shards", type=click.Path(file_okay=False, path_type=Path),
              help="Token shards to train on (default: the recipe's, e.g. data/shapes-tokens).")
@training_options
def train(recipe: str, shards: Path | None, out_dir: Path | None, overrides: tuple[str, ...], variant: str,
          resume_dir: Path | None, dry_run: bool) -> None:
    """Train a generator from RECIPE (a recipe name such as `shapes`, or a .yaml/.json config file).

    \b
    Examples:
      t2v tokenizer encode runs/shapes-tokenizer-00001 data/shapes/index.jsonl data/shapes-tokens
      t2v generator train shapes --set tokenizer_dir=runs/shapes-tokenizer-00001
      t2v generator train shapes --variant quick --set steps=100 --out runs/try
      t2v generator train shapes --set zero_stage=2 --set grad_accum=4 --dry-run
      t2v generator train shapes --resume runs/shapes-generator-00001
      torchrun --nproc_per_node=2 -m t2v.cli.main generator train shapes --out runs/ddp
    """
    from t2v.generator.config import GeneratorTrainConfig
    from t2v.recipes.registry import generator_config

    def check(config: GeneratorTrainConfig) -> None:
        from t2v.generator.train import check_inputs  # torch and the model: after the recipe and overrides

        check_inputs(config)

    def estimate(config: GeneratorTrainConfig) -> str:
        from t2v.generator import memory

        return memory.estimate(config).format()

    overrides = (f"data.shards={shards}", *overrides) if shards is not None else overrides
    config, run_dir = resolve_training(GeneratorTrainConfig, generator_config, "generator", recipe, variant,
                                       overrides, out_dir, resume_dir, dry_run, check, estimate)
    if dry_run:
        return
    from t2v.generator.train import train as run_training

    result = run_training(config, run_dir, resume=resume_dir is not None)
    click.echo(f"done: {result.summary()}\ngenerator saved in {run_dir}")
