"""`t2v recipe run`: every stage of a recipe, from data to a scored pipeline, in one command."""
from __future__ import annotations

from pathlib import Path

import click

RUNNABLE = ("shapes",)


@click.group()
def recipe() -> None:
    """Run a whole recipe (data → tokenizer → tokens → generator → pipeline → evaluation)."""


@recipe.command()
@click.argument("name", type=click.Choice(RUNNABLE))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for every stage's output; running again resumes where it stopped.")
@click.option("--quick", is_flag=True, help="A few minutes on a CPU: smaller data, shorter training, rougher videos.")
@click.option("--variant", type=click.Choice(["default", "multi"]), default="default", show_default=True,
              help="multi: clips at 64x64 and 96x64, 8 and 16 fps; the pipeline generates each size and rate.")
def run(name: str, out_dir: Path, quick: bool, variant: str) -> None:
    """Run recipe NAME into OUT: the main job, from nothing to `OUT/pipeline` and its evaluation.

    \b
    Examples:
      t2v recipe run shapes --out runs/shapes-quick --quick     # ~10 minutes on 2 CPU cores
      t2v recipe run shapes --out runs/shapes                   # the full run
      t2v recipe run shapes --out runs/shapes-multi --variant multi --quick   # two sizes, two frame rates
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4
    """
    from t2v.recipes.shapes.run import run_config, run_recipe

    click.echo(f"recipe {name} {variant}{' (quick)' if quick else ''} → {out_dir}")
    run_recipe(out_dir, run_config(quick, variant), log=click.echo)
