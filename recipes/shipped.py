"""Pipelines that ship with the package: a recipe's final pipeline in `recipes/<name>/pipeline/` (its weights as
fp16 safetensors), so that `t2v generate shapes "…"` works right after `pip install`, with no training.

Wherever a command takes a pipeline, it takes a directory or the name of a shipped pipeline; an existing directory
wins (`resolve_pipeline`). Shipped pipelines are found by their files, not listed: a recipe folder with a
`pipeline/pipeline.json` ships one.
"""
from __future__ import annotations

from pathlib import Path

import t2v.recipes
from t2v.generator.layout import PIPELINE_FILE  # what makes a folder a pipeline

PIPELINE_FOLDER = "pipeline"  # recipes/<name>/pipeline/


def shipped_pipelines() -> dict[str, Path]:
    """Name → directory of every pipeline the installed package holds, sorted by name."""
    found = {}
    for root in t2v.recipes.__path__:
        for folder in sorted(Path(root).iterdir()):
            if (folder / PIPELINE_FOLDER / PIPELINE_FILE).is_file():
                found.setdefault(folder.name, folder / PIPELINE_FOLDER)
    return dict(sorted(found.items()))


def resolve_pipeline(spec: str | Path) -> Path:
    """The pipeline directory `spec` names: an existing directory as it is, else the shipped pipeline of that name,
    else `spec` as a path (loading it then says it is missing, and how to make one)."""
    path = Path(spec)
    if path.is_dir():
        return path
    return shipped_pipelines().get(str(spec), path)


def is_shipped(directory: Path) -> bool:
    """Whether `directory` is one of the shipped pipelines (a command must not write beside it: the package's
    folder may be read-only, and an upgrade would replace it)."""
    resolved = directory.resolve()
    return any(resolved == path.resolve() for path in shipped_pipelines().values())


def ship(pipeline_dir: str | Path, name: str) -> Path:
    """Copy the pipeline in `pipeline_dir` into this checkout's `recipes/<name>/pipeline/` with its parameters in
    fp16 (half the size; loading casts back to fp32), replacing the one there. For maintainers: the copy is what
    `pip install .` then ships (setup.cfg's package_data)."""
    import torch

    from t2v.generator.pipeline import TextToVideo

    recipe_folder = Path(t2v.recipes.__path__[0]) / name
    if not recipe_folder.is_dir():
        raise FileNotFoundError(f"no recipe folder {recipe_folder}: ship into a recipe of this checkout")
    target = recipe_folder / PIPELINE_FOLDER
    TextToVideo.from_pretrained(pipeline_dir).save_pretrained(target, dtype=torch.float16)
    return target


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Ship a pipeline with the package: python -m t2v.recipes.shipped "
                                     "runs/shapes/pipeline shapes")
    parser.add_argument("pipeline_dir", type=Path, help="the pipeline to ship (made by `t2v recipe run`)")
    parser.add_argument("name", help="the recipe it ships in (recipes/NAME/pipeline/)")
    arguments = parser.parse_args()
    print(f"shipped → {ship(arguments.pipeline_dir, arguments.name)}")
