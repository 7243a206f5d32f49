"""`t2v eval RECIPE PIPELINE`: score a pipeline (a directory, or the name of a shipped one) with a recipe's
evaluation; `t2v eval fvd REAL_DIR FAKE_DIR --i3d PATH`: the Fréchet Video Distance between two folders of videos.

The recipes with an evaluation come from the recipe registry (t2v.recipes.registry: a recipe has one when it has an
`evaluate` module); each is a command of this group, built when it is asked for, with the same options. Commands
added to the group itself (`fvd`) are listed after them.
"""
from __future__ import annotations

from pathlib import Path

import click
from t2v.cli.options import (PIPELINE, SIZE, ProgressBar, check_pipeline, device_options, load_pipeline,
                             quiet_option, sampling_config, sampling_options)

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

        return [*EVALUABLE, *self.commands]

    def get_command(self, ctx: click.Context, name: str) -> click.Command:
        from t2v.recipes.registry import evaluation

        if name in self.commands:
            return self.commands[name]
        try:
            return eval_command(evaluation(name))
        except ValueError as error:  # not a recipe, or one without an evaluation: the ones with one
            raise click.UsageError(str(error), ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The recipes, without importing their evaluations (`t2v eval --help` stays fast)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, self.commands[name].get_short_help_str(formatter.width)) if name in
                                self.commands else (name, f"Score a pipeline with the {name} recipe's evaluation.")
                                for name in self.list_commands(ctx)])


@click.group(name="eval", cls=RecipeEvaluations)
def evaluate() -> None:
    """Evaluate a pipeline on a recipe's benchmark, or two folders of videos by FVD."""


@evaluate.command("fvd")
@click.argument("real_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("fake_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--i3d", "i3d", type=click.Path(path_type=Path), required=True,
              help="The I3D: StyleGAN-V's i3d_torchscript.pt (download it from "
              "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1), a state dict of pytorch-i3d's "
              "InceptionI3d (e.g. cd-fvd's i3d_pretrained_400.pt), or a folder holding one of them.")
@click.option("--frames", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames of each video (its first ones, at its own rate).")
@click.option("--size", type=click.IntRange(min=1), default=224, show_default=True,
              help="Frames are resized to cover SIZE x SIZE and center-cropped.")
@click.option("--num", type=click.IntRange(min=2), help="Use the first NUM videos of each folder, sorted by path "
              "(default: all).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Videos per I3D pass.")
@click.option("--device", default="auto", show_default=True,
              help="Where the I3D runs: auto (CUDA when available), cpu, cuda, cuda:N.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report as JSON here.")
@quiet_option
def fvd(real_dir: Path, fake_dir: Path, i3d: Path, frames: int, size: int, num: int | None, batch: int, device: str,
        out: Path | None, quiet: bool) -> None:
    """Fréchet Video Distance (FVD) between two folders of videos.

    The videos of REAL_DIR and FAKE_DIR (any depth; mp4, webm, gif, …, or frame folders t2v wrote) are compared
    by I3D features in StyleGAN-V's protocol: the first 16 frames of each video at 224x224 in [-1, 1], the 400
    Kinetics logits, the Fréchet distance of the two Gaussians. Prints the score with the number of videos, their
    resolutions and the frames used. Lower is closer; compare scores of equal video counts only (papers use 2,048
    per folder).

    \b
    Examples:
      t2v eval fvd data/real runs/samples --i3d ~/weights/i3d_torchscript.pt
      t2v eval fvd data/real runs/samples --i3d ~/weights --num 2048 --out fvd.json --device cuda
    """
    from t2v.core.atomic import atomic_write_text
    from t2v.core.precision import resolve_device
    from t2v.tokenizer.fvd import fvd as measure

    where = resolve_device(device)
    with ProgressBar(None, "eval fvd", "video", quiet) as bar:  # its total: once the folders are checked and counted
        report = measure(real_dir, fake_dir, i3d, frames=frames, size=size, num=num, batch=batch, device=where,
                         total=lambda count: setattr(bar, "total", count), progress=bar)
    click.echo(report.format())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, report.to_json())
        click.echo(f"report → {out}")


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
    @quiet_option
    def command(pipeline_dir: Path, num: int, splits: tuple[str, ...], out_dir: Path | None,
                sizes: tuple[tuple[int, int], ...], rates: tuple[float, ...], per_condition: bool,
                cfg_scale: float | None, temperature: float | None, top_k: int | None, top_p: float | None,
                steps: int | None, device: str, dtype: str, seed: int, quiet: bool) -> None:
        if per_condition and (sizes or rates):
            raise click.UsageError("give --per-variant or --size/--fps, not both")
        check_pipeline(pipeline_dir)  # a missing pipeline: the one-line error before torch is imported
        pipeline = load_pipeline(pipeline_dir, device, dtype)
        if per_condition:
            sizes, rates = tuple(pipeline.trained_sizes), tuple(pipeline.trained_rates)
        config = evaluation.config(num=num, splits=splits or evaluation.splits, seed=seed, sizes=sizes, rates=rates,
                                   sampling=sampling_config(temperature=temperature, top_k=top_k, top_p=top_p,
                                                            cfg_scale=cfg_scale, steps=steps))
        conditions = config.conditions(pipeline)  # every (size, rate) scored
        for size, fps in conditions:
            pipeline.condition_for(size, fps)  # an untrained size or rate: the one-line error before any video
        out_dir = out_dir or default_out_dir(pipeline_dir)
        with ProgressBar(num * len(config.splits) * len(conditions), f"eval {name}", "video", quiet) as progress:
            reports = evaluation.evaluate(pipeline, config, out_dir, progress=progress)
        click.echo(evaluation.format_table(reports))
        click.echo(f"report → {out_dir / 'eval.json'}")

    return command
