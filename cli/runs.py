"""Run directories and the options every training command shares (--out, --set, --variant, --resume, --dry-run).

Numbered run directories: runs/<recipe>-<stage>-NNNNN, the next free number.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import click


def next_run_dir(root: Path, prefix: str, create: bool = True) -> Path:
    """`root/prefix-NNNNN` with NNNNN one above the highest existing; created (exclusively) when `create`."""
    root.mkdir(parents=True, exist_ok=True) if create else None
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{5}})$")
    taken = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else []) if (m := pattern.match(p.name))]
    number = max(taken, default=0) + 1
    while True:
        candidate = root / f"{prefix}-{number:05d}"
        if not create:
            return candidate
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:  # another process took it first
            number += 1


def training_options(command: Callable) -> Callable:
    """The options of a `… train RECIPE` command: --out, --set, --variant, --resume, --dry-run."""
    options = [
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory (default: runs/<recipe>-<stage>-NNNNN, the next free number)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config value, e.g. --set steps=500 --set optim.lr=3e-4. Repeatable."),
        click.option("--variant", default="default", show_default=True, help="Recipe variant, e.g. quick."),
        click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Continue the run in this directory from its latest checkpoint."),
        click.option("--dry-run", is_flag=True, help="Print the resolved config, the run directory and an estimate of "
                     "the memory per GPU (parameters, model states, activations), then stop."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resolve_training(config_type: type, recipe_config: Callable[[str, str], Any], stage: str, recipe: str,
                     variant: str, overrides: tuple[str, ...], out_dir: Path | None, resume_dir: Path | None,
                     dry_run: bool, check: Callable[[Any], None] | None = None,
                     estimate: Callable[[Any], str] | None = None) -> tuple[Any, Path]:
    """The config (the recipe's, or the resumed run's config.json, with overrides) and the run directory; prints
    both. `check(config)` runs before a run directory is made (not on a dry run): it raises on missing inputs. On a
    dry run, `estimate(config)` (the stage's memory estimate, as text) is printed after them."""
    from t2v.core import config_io

    if resume_dir is not None:
        if not (resume_dir / "config.json").is_file():
            raise FileNotFoundError(f"no run to resume in {resume_dir} (no config.json): give the directory of a "
                                    "training run")
        config, run_dir = config_io.load(config_type, resume_dir / "config.json"), resume_dir
    else:
        config, run_dir = recipe_config(recipe, variant), out_dir
    config = config_io.apply_overrides(config, overrides)
    if check is not None and not dry_run:
        check(config)
    if run_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise click.UsageError("with several ranks every rank must use the same run directory: pass --out DIR")
        run_dir = next_run_dir(Path("runs"), f"{config.name}-{stage}", create=False)  # the trainer makes and locks it
    click.echo(config_io.dump_yaml(config).rstrip())
    click.echo(f"run directory: {run_dir}{' (resuming)' if resume_dir else ''}")
    if dry_run and estimate is not None:
        click.echo(estimate(config))
    return config, run_dir

