"""`t2v eval`: score a pipeline with a recipe's verifier."""
from __future__ import annotations

from pathlib import Path

import click

from t2v.cli.options import SIZE, sampling_config, sampling_options


@click.group(name="eval")
def evaluate() -> None:
    """Evaluate a pipeline on a recipe's benchmark."""


@evaluate.command()
@click.argument("pipeline_dir", type=click.Path(path_type=Path))
@click.option("--num", type=click.IntRange(min=1), default=64, show_default=True, help="Videos per split.")
@click.option("--split", "splits", type=click.Choice(["seen", "heldout"]), multiple=True,
              help="Only this split (repeatable; default: both).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write eval.json, eval.txt and sample GIFs here (default: PIPELINE_DIR/../eval).")
@click.option("--size", "sizes", type=SIZE, multiple=True,
              help="Score at this frame size WxH (repeatable; default: the pipeline's).")
@click.option("--fps", "rates", type=click.FloatRange(min=0, min_open=True), multiple=True,
              help="Score at this frame rate (repeatable; default: the pipeline's).")
@click.option("--per-variant", is_flag=True, help="Score at every size and rate the generator was trained on.")
@sampling_options
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def shapes(pipeline_dir: Path, num: int, splits: tuple[str, ...], out_dir: Path | None,
           sizes: tuple[tuple[int, int], ...], rates: tuple[float, ...], per_variant: bool, cfg_scale: float | None,
           temperature: float | None, top_k: int | None, top_p: float | None, seed: int) -> None:
    """Generate NUM videos per split of shapes captions and score them with the recipe's verifier.

    Prints accuracy per attribute (object, color, shape, direction, speed) and overall, per split; with several
    sizes or rates (--size, --fps, --per-variant), also per split and variant, per size and per rate.

    \b
    Examples:
      t2v eval shapes runs/shapes/pipeline --num 64
      t2v eval shapes runs/shapes-multi/pipeline --num 32 --per-variant
      t2v eval shapes runs/shapes-multi/pipeline --size 96x64 --fps 8 --fps 16
    """
    from tqdm import tqdm

    from t2v.generator.pipeline import TextToVideo
    from t2v.recipes.shapes.evaluate import ShapesEvalConfig, evaluate_pipeline
    from t2v.recipes.shapes.verify import format_table

    pipeline = TextToVideo.from_pretrained(pipeline_dir)
    if per_variant and (sizes or rates):
        raise click.UsageError("give --per-variant or --size/--fps, not both")
    if per_variant:
        sizes, rates = tuple(pipeline.trained_sizes), tuple(pipeline.trained_rates)
    config = ShapesEvalConfig(num=num, splits=splits or ("seen", "heldout"), seed=seed, sizes=sizes, rates=rates,
                              sampling=sampling_config(temperature=temperature, top_k=top_k, top_p=top_p,
                                                       cfg_scale=cfg_scale))
    for size, fps in config.variants(pipeline):
        pipeline.condition_for(size, fps)  # an untrained size or rate: the one-line error before any video
    out_dir = out_dir or pipeline_dir.resolve().parent / "eval"
    total = num * len(config.splits) * len(config.variants(pipeline))
    with tqdm(total=total, desc="eval shapes", unit="video") as progress:
        reports = evaluate_pipeline(pipeline, config, out_dir, progress=progress.update)
    click.echo(format_table(reports))
    click.echo(f"report → {out_dir / 'eval.json'}")
