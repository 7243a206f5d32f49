"""Models that ship with the package: a recipe's final pipeline in `recipes/<name>/pipeline/` and a recipe's video
tokenizer in `recipes/<name>/tokenizer/` (weights as fp16 safetensors), so that `t2v generate shapes "…"` and
`t2v tokenizer reconstruct stills IN OUT` work right after `pip install`, with no training.

Wherever a command takes a pipeline (or a tokenizer), it takes a directory or the name of a shipped one; an
existing directory wins (`resolve_pipeline`, `resolve_tokenizer`). A shipped pipeline's video tokenizer also ships
under the recipe's name when the recipe has no tokenizer of its own. They are found by their files, not listed: a
recipe folder with `pipeline/pipeline.json` ships a pipeline, one with `tokenizer/config.json` a tokenizer.
"""
from __future__ import annotations

from pathlib import Path

import t2v.recipes
from t2v.generator.layout import PIPELINE_FILE  # what makes a folder a pipeline

PIPELINE_FOLDER = "pipeline"  # recipes/<name>/pipeline/
TOKENIZER_FOLDER = "tokenizer"  # recipes/<name>/tokenizer/
TOKENIZER_FILE = "config.json"  # what makes a folder a saved tokenizer (VideoTokenizer.save_pretrained writes it)


def _shipped(folder_name: str, marker: str) -> dict[str, Path]:
    """Name → `recipes/<name>/<folder_name>/` of every recipe holding `marker` there, sorted by name."""
    found = {}
    for root in t2v.recipes.__path__:
        for folder in sorted(Path(root).iterdir()):
            if (folder / folder_name / marker).is_file():
                found.setdefault(folder.name, folder / folder_name)
    return dict(sorted(found.items()))


def shipped_pipelines() -> dict[str, Path]:
    """Name → directory of every pipeline the installed package holds, sorted by name."""
    return _shipped(PIPELINE_FOLDER, PIPELINE_FILE)


def shipped_tokenizers() -> dict[str, Path]:
    """Name → directory of every video tokenizer the installed package holds: the recipes' own, and the video
    tokenizer of each shipped pipeline whose recipe has none."""
    pipelines = {name: folder / "video_tokenizer" for name, folder in shipped_pipelines().items()}
    return dict(sorted({**pipelines, **_shipped(TOKENIZER_FOLDER, TOKENIZER_FILE)}.items()))


def resolve_pipeline(spec: str | Path) -> Path:
    """The pipeline directory `spec` names: an existing directory as it is, else the shipped pipeline of that name,
    else `spec` as a path (loading it then says it is missing, and how to make one)."""
    path = Path(spec)
    if path.is_dir():
        return path
    return shipped_pipelines().get(str(spec), path)


def resolve_tokenizer(spec: str | Path) -> Path:
    """The tokenizer directory `spec` names: an existing directory as it is, else the shipped tokenizer of that
    name, else `spec` as a path (loading it then says it is missing)."""
    path = Path(spec)
    if path.is_dir():
        return path
    return shipped_tokenizers().get(str(spec), path)


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

    target = _recipe_folder(name) / PIPELINE_FOLDER
    TextToVideo.from_pretrained(pipeline_dir).save_pretrained(target, dtype=torch.float16)
    return target


def ship_tokenizer(tokenizer_dir: str | Path, name: str) -> Path:
    """Copy the video tokenizer in `tokenizer_dir` (a run or save_pretrained directory) into this checkout's
    `recipes/<name>/tokenizer/` with its parameters in fp16, replacing the one there (for maintainers, as `ship`)."""
    import torch

    from t2v.tokenizer.model import VideoTokenizer

    target = _recipe_folder(name) / TOKENIZER_FOLDER
    VideoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(target, dtype=torch.float16)
    return target


def _recipe_folder(name: str) -> Path:
    """This checkout's `recipes/<name>/`, which a maintainer ships into."""
    folder = Path(t2v.recipes.__path__[0]) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no recipe folder {folder}: ship into a recipe of this checkout")
    return folder


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Ship a pipeline (or, with --tokenizer, a video tokenizer) with "
                                     "the package: python -m t2v.recipes.shipped runs/shapes/pipeline shapes")
    parser.add_argument("directory", type=Path, help="the pipeline (made by `t2v recipe run`) or tokenizer to ship")
    parser.add_argument("name", help="the recipe it ships in (recipes/NAME/pipeline/ or recipes/NAME/tokenizer/)")
    parser.add_argument("--tokenizer", action="store_true", help="ship a video tokenizer, not a pipeline")
    arguments = parser.parse_args()
    shipping = ship_tokenizer if arguments.tokenizer else ship
    print(f"shipped → {shipping(arguments.directory, arguments.name)}")
