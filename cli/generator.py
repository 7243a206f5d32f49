"""`t2v generator …`: train the text-to-video transformer. Parses, prints what it will do, calls one function."""
from __future__ import annotations

import os
from pathlib import Path

import click

from t2v.cli.runs import next_run_dir


@click.group()
def generator() -> None:
    """Train the generator (the transformer that writes video codes for a caption) on token shards."""


@generator.command()
@click.argument("recipe")
@click.option("--shards", "shards", type=click.Path(file_okay=False, path_type=Path),
              help="Token shards to train on (default: the recipe's, e.g. data/shapes-tokens).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: runs/<recipe>-generator-NNNNN, the next free number).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set steps=500 --set zero_stage=2. Repeatable.")
@click.option("--variant", default="default", show_default=True, help="Recipe variant, e.g. quick.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its latest checkpoint.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the run directory, then stop.")
def train(recipe: str, shards: Path | None, out_dir: Path | None, overrides: tuple[str, ...], variant: str,
          resume_dir: Path | None, dry_run: bool) -> None:
    """Train a generator from RECIPE (a recipe name such as `shapes`, or a .yaml/.json config file).

    \b
    Examples:
      t2v tokenizer encode runs/shapes-tokenizer-00001 data/shapes/index.jsonl data/shapes-tokens
      t2v generator train shapes
      t2v generator train shapes --variant quick --set steps=100 --out runs/try
      t2v generator train shapes --resume runs/shapes-generator-00001
      torchrun --nproc_per_node=2 -m t2v.cli.main generator train shapes --out runs/ddp
    """
    from t2v.generator.train import GeneratorTrainConfig, train as run_training
    from t2v.recipes import config as config_io
    from t2v.recipes.registry import generator_config

    if resume_dir is not None:
        config = config_io.load(GeneratorTrainConfig, resume_dir / "config.json")
        run_dir = resume_dir
    else:
        config = generator_config(recipe, variant)
        run_dir = out_dir
    if shards is not None:
        overrides = (f"data.shards={shards}", *overrides)
    config = config_io.apply_overrides(config, overrides)
    if not dry_run and not (Path(config.data.shards) / "meta.json").is_file():
        raise FileNotFoundError(f"token shards not found: {config.data.shards} (make them with `t2v tokenizer "
                                f"encode TOKENIZER INDEX {config.data.shards}`, or pass --shards DIR)")
    if run_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise click.UsageError("with several ranks every rank must use the same run directory: pass --out DIR")
        run_dir = next_run_dir(Path("runs"), f"{config.name}-generator", create=not dry_run)
    click.echo(config_io.dump_yaml(config).rstrip())
    click.echo(f"run directory: {run_dir}{' (resuming)' if resume_dir else ''}")
    if dry_run:
        return
    result = run_training(config, run_dir, resume=resume_dir is not None)
    click.echo(f"done: {result.summary()}\ngenerator saved in {run_dir}")
