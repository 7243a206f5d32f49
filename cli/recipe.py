"""`t2v recipe run`: every stage of a recipe, from data to a scored pipeline, in one command.

Which recipes run end to end, and their variants, the recipe registry says (t2v.recipes.registry): a recipe runs
when it has a `run` module. The help lists them (it imports their run modules, so only `--help` pays for it).
"""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.options import device_options


class RunCommand(click.Command):
    """`recipe run`, whose help ends with the runnable recipes and their variants, read from the registry."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from t2v.recipes.registry import RUNNABLE, run_variants

        with formatter.section("Runnable recipes and their variants (--variant)"):
            formatter.write_dl([(f"{name} {variant}", summary) for name in RUNNABLE
                                for variant, summary in run_variants(name).items()])
        super().format_epilog(ctx, formatter)


@click.group()
def recipe() -> None:
    """Run a whole recipe (data → tokenizer → tokens → generator → pipeline → evaluation)."""


@recipe.command(cls=RunCommand)
@click.argument("name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for every stage's output; running again resumes where it stopped.")
@click.option("--quick", is_flag=True, help="A few minutes on a CPU: smaller data, shorter training, rougher videos.")
@click.option("--variant", metavar="NAME", default="default", show_default=True,
              help="A variant of the recipe's run (listed below), e.g. multi.")
@click.option("--dry-run", is_flag=True, help="Print the resolved stage configs and the output layout; create nothing.")
@device_options
def run(name: str, out_dir: Path, quick: bool, variant: str, dry_run: bool, device: str, dtype: str) -> None:
    """Run recipe NAME into OUT: the main job, from nothing to `OUT/pipeline` and its evaluation.

    \b
    Examples:
      t2v recipe run shapes --out runs/shapes-quick --quick     # ~7 minutes on 2 CPU cores
      t2v recipe run shapes --out runs/shapes                   # the full run, ~28 minutes
      t2v recipe run shapes --out runs/shapes-multi --variant multi --quick   # two sizes, two frame rates
      t2v recipe run shapes --out runs/shapes --dry-run         # the configs and the layout, nothing run
      t2v recipe run shapes --out runs/shapes --device cuda     # encode and evaluate on the GPU (training takes
                                                                # the GPU whenever one is visible)
      t2v generate runs/shapes/pipeline "a red circle moving left slowly" -o red_circle.mp4
    """
    from t2v.core.config_io import dump_yaml
    from t2v.recipes.registry import run_module

    module = run_module(name)  # a recipe that cannot run end to end: a one-line error naming those that can
    from t2v.core.precision import resolve

    resolve(device, dtype)  # a bad --device or --dtype: the one-line error before anything runs
    config = module.run_config(quick, variant)
    click.echo(f"recipe {name} {variant}{' (quick)' if quick else ''} → {out_dir}")
    if dry_run:
        click.echo(dump_yaml(config.resolve(out_dir)).rstrip())
        width = max(map(len, module.LAYOUT))
        click.echo("output layout:")
        for entry, what in module.LAYOUT.items():
            click.echo(f"  {out_dir}/{entry:<{width}}  {what}")
        return
    module.run_recipe(out_dir, config, log=click.echo, device=device, dtype=dtype)
