"""Option parsers shared by the `t2v` commands (pipelines, sizes, sampling settings, progress).

Nothing here imports torch at module level: the commands check their arguments and paths before the models'
modules are imported (`check_pipeline` before `load_pipeline`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'64' → (64, 64); '160x96' (W×H) → (96, 160) as (H, W). None stays None."""
    if text is None:
        return None
    try:
        if "x" in text.lower():
            width, height = (int(part) for part in text.lower().split("x"))
        else:
            width = height = int(text)
    except ValueError:
        raise click.BadParameter(f"size {text!r} is not N or WxH (e.g. 64 or 160x96)") from None
    if width <= 0 or height <= 0:
        raise click.BadParameter(f"size {text!r} must be positive")
    return height, width


class SizeType(click.ParamType):
    """A click type for `--size 64` / `--size 160x96`, giving (H, W)."""

    name = "N|WxH"

    def convert(self, value, param, ctx):  # noqa: D102 - click API
        if isinstance(value, tuple):
            return value
        try:
            return parse_size(value)
        except click.BadParameter as error:
            self.fail(error.message, param, ctx)


SIZE = SizeType()


class PipelineType(click.ParamType):
    """A click type for a pipeline argument: a directory, or the name of a pipeline the package ships (`shapes`);
    an existing directory wins. Gives a Path; a missing one is reported by `check_pipeline`, which a command calls
    after checking its outputs."""

    name = "PIPELINE"

    def convert(self, value, param, ctx):  # noqa: D102 - click API
        from t2v.recipes.shipped import resolve_pipeline

        return resolve_pipeline(value)


PIPELINE = PipelineType()


class TokenizerType(click.ParamType):
    """A click type for a video tokenizer argument: a directory, or the name of one the package ships (`stills`;
    a shipped pipeline's name gives its video tokenizer); an existing directory wins. Gives a Path."""

    name = "TOKENIZER"

    def convert(self, value, param, ctx):  # noqa: D102 - click API
        from t2v.recipes.shipped import resolve_tokenizer

        return resolve_tokenizer(value)


TOKENIZER = TokenizerType()


def sampling_options(command: Callable) -> Callable:
    """--cfg, --temperature, --top-k, --top-p, --steps; unset ones keep `SamplingConfig`'s defaults (shown in
    --help)."""
    options = [
        click.option("--cfg", "cfg_scale", type=float, help="Classifier-free guidance scale (1 = off) [default: 2]."),
        click.option("--temperature", type=float, help="Sampling temperature (0 = greedy) [default: 0.7]."),
        click.option("--top-k", type=int, help="Keep the k most likely codes (0 = off) [default: 20]."),
        click.option("--top-p", type=float, help="Nucleus sampling mass (1 = off) [default: 1]."),
        click.option("--steps", type=int, help="Forward passes per latent frame, for a generator trained to decode "
                     "several codes per pass (decoding 'masked'): 1 to the frame's codes; fewer is faster [default: "
                     "the generator's own]. The frame's number of codes gives one code per pass."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def device_options(command: Callable) -> Callable:
    """--device and --dtype (both default to auto: CUDA with bf16 when a GPU is visible, else CPU with fp32)."""
    options = [
        click.option("--device", default="auto", show_default=True,
                     help="Where the models run: auto (CUDA when available), cpu, cuda, cuda:N."),
        click.option("--dtype", default="auto", show_default=True,
                     help="Weights and compute dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, "
                          "bfloat16, float16."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def check_pipeline(directory: Path) -> None:
    """Refuse a missing pipeline directory, or one without its pipeline.json, with the message loading it gives,
    before torch and the models are imported (seconds) rather than after. A hub id (`user/repo`, no folder here) is
    left to loading, which downloads it or says why it cannot."""
    from t2v.core.hub import is_hub_id
    from t2v.generator.layout import check_pipeline_dir

    if not directory.is_dir() and is_hub_id(directory):
        return
    check_pipeline_dir(directory)


def load_pipeline(directory, device: str, dtype: str):
    """The pipeline in `directory` on the `--device` / `--dtype` asked for (checked before the weights load)."""
    from t2v.core.precision import resolve

    where, precision = resolve(device, dtype)
    from t2v.generator.pipeline import TextToVideo

    return TextToVideo.from_pretrained(directory).to(where, precision)


def sampling_config(**values: Any):
    """A `SamplingConfig` from the sampling options that were given."""
    from t2v.generator.sample import SamplingConfig

    return SamplingConfig(**{name: value for name, value in values.items() if value is not None})


def quiet_option(command: Callable) -> Callable:
    """-q / --quiet: no progress bar (for scripts; the bar goes to stderr, results to stdout either way)."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar (for scripts).")(command)


class ProgressBar:
    """A tqdm bar on stderr, opened by the first report (`bar(n)`: n more items done), so that an error raised before
    any item is done is the one line on stderr; none at all when `quiet`. A context manager that closes it."""

    def __init__(self, total: int | None, desc: str, unit: str, quiet: bool = False) -> None:
        self.total, self.desc, self.unit, self.quiet = total, desc, unit, quiet
        self.bar = None

    def __call__(self, done: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.close()
