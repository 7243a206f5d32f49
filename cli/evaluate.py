"""`t2v eval RECIPE PIPELINE`: score a pipeline (a directory, or the name of a shipped one) with a recipe's
evaluation.

The recipes with an evaluation come from the recipe registry (t2v.recipes.registry: a recipe has one when it has an
`evaluate` module); each is a command of this group, built when it is asked for, with the same options.
"""
from __future__ import annotations

from pathlib import Path

import click
from t2v.cli.options import PIPELINE, SIZE, device_options, load_pipeline, sampling_config, sampling_options

HELP = """{summary}.

PIPELINE is a pipeline directory (made by `t2v recipe run`) or the name of one the package ships. Prints the scores
of NUM videos per split and, with several sizes or rates (--size, --fps, --per-variant), also per split and condition
(size and rate), per size and per rate.

\b
Examples:
  t2v eval {name} {name} --num 64                  # the pipeline the package ships, if it ships one
  t2v eval {name} runs/{name}/pipeline --num 64
  t2v eval {name} runs/{name}-multi/pipeline --num 32 --per-variant
  t2v eval {name} runs/{name}-multi/pipeline --size 96x64 --fps 8 --fps 16
"""


class RecipeEvaluations(click.Group):
    """`t2v eval`'s commands: one per recipe with an evaluation, from the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from t2v.recipes.registry import EVALUABLE

        return list(EVALUABLE)

    def get_command(self, ctx: click.Context, name: str) -> click.Command:
        from t2v.recipes.registry import evaluation

        try:
            return eval_command(evaluation(name))
        except ValueError as error:  # not a recipe, or one without an evaluation: the ones with one
            raise click.UsageError(str(error), ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The recipes, without importing their evaluations (`t2v eval --help` stays fast)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, f"Score a pipeline with the {name} recipe's evaluation.")
                                for name in self.list_commands(ctx)])


@click.group(name="eval", cls=RecipeEvaluations)
def evaluate() -> None:
    """Evaluate a pipeline on a recipe's benchmark."""


def default_out_dir(pipeline_dir: Path) -> Path:
    """Where the reports go unless --out says: beside the pipeline, or, for a shipped one (whose folder belongs to
    the installed package), runs/shipped-NAME/eval under the working directory."""
    from t2v.recipes.shipped import is_shipped

    if is_shipped(pipeline_dir):
        return Path("runs") / f"shipped-{pipeline_dir.resolve().parent.name}" / "eval"
    return pipeline_dir.resolve().parent / "eval"


def eval_command(evaluation) -> click.Command:
    """The `t2v eval NAME` command of a recipe's evaluation (a `t2v.recipes.registry.Evaluation`)."""
    name = evaluation.recipe

    @click.command(name=name, help=HELP.format(name=name, summary=evaluation.summary))
    @click.argument("pipeline_dir", metavar="PIPELINE", type=PIPELINE)
    @click.option("--num", type=click.IntRange(min=1), default=64, show_default=True, help="Videos per split.")
    @click.option("--split", "splits", type=click.Choice(evaluation.splits), multiple=True,
                  help="Only this split (repeatable; default: every split).")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                  help="Write eval.json, eval.txt and sample GIFs here (default: PIPELINE/../eval; for a shipped "
                  "pipeline runs/shipped-NAME/eval).")
    @click.option("--size", "sizes", type=SIZE, multiple=True,
                  help="Score at this frame size WxH (repeatable; default: the pipeline's).")
    @click.option("--fps", "rates", type=click.FloatRange(min=0, min_open=True), multiple=True,
                  help="Score at this frame rate (repeatable; default: the pipeline's).")
    @click.option("--per-variant", "per_condition", is_flag=True,
                  help="Score at every size and rate the generator was trained on.")
    @sampling_options
    @device_options
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
    def command(pipeline_dir: Path, num: int, splits: tuple[str, ...], out_dir: Path | None,
                sizes: tuple[tuple[int, int], ...], rates: tuple[float, ...], per_condition: bool,
                cfg_scale: float | None, temperature: float | None, top_k: int | None, top_p: float | None,
                steps: int | None, device: str, dtype: str, seed: int) -> None:
        from tqdm import tqdm

        pipeline = load_pipeline(pipeline_dir, device, dtype)
        if per_condition and (sizes or rates):
            raise click.UsageError("give --per-variant or --size/--fps, not both")
        if per_condition:
            sizes, rates = tuple(pipeline.trained_sizes), tuple(pipeline.trained_rates)
        config = evaluation.config(num=num, splits=splits or evaluation.splits, seed=seed, sizes=sizes, rates=rates,
                                   sampling=sampling_config(temperature=temperature, top_k=top_k, top_p=top_p,
                                                            cfg_scale=cfg_scale, steps=steps))
        conditions = config.conditions(pipeline)  # every (size, rate) scored
        for size, fps in conditions:
            pipeline.condition_for(size, fps)  # an untrained size or rate: the one-line error before any video
        out_dir = out_dir or default_out_dir(pipeline_dir)
        with tqdm(total=num * len(config.splits) * len(conditions), desc=f"eval {name}", unit="video") as progress:
            reports = evaluation.evaluate(pipeline, config, out_dir, progress=progress.update)
        click.echo(evaluation.format_table(reports))
        click.echo(f"report → {out_dir / 'eval.json'}")

    return command
