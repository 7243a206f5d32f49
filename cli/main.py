"""The `t2v` command group: registers each stage's sub-group and turns library errors into one-line messages."""
from __future__ import annotations

import os
import sys

import click

from t2v.cli.data import data
from t2v.cli.evaluate import evaluate
from t2v.cli.generate import extend, generate
from t2v.cli.generator import generator
from t2v.cli.recipe import recipe
from t2v.cli.tokenizer import tokenizer

# Errors a user can fix (bad path, bad video, bad size, bad config): shown as one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
               KeyError)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="t2v")
def cli() -> None:
    """TextToVideoAI: train a video tokenizer and a text-to-video transformer, generate videos of any length."""


cli.add_command(recipe)
cli.add_command(data)
cli.add_command(tokenizer)
cli.add_command(generator)
cli.add_command(generate)
cli.add_command(extend)
cli.add_command(evaluate)


def main() -> None:
    """Console entry point: run the click group, printing user errors as `Error: …` on one line."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except USER_ERRORS as error:
        if os.environ.get("T2V_DEBUG"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        click.echo(f"Error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
