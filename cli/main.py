"""The `t2v` command group: registers each stage's sub-group and turns library errors into one-line messages."""
from __future__ import annotations

import errno
import os
import re
import sys
import warnings
from pathlib import Path

import click
from safetensors import SafetensorError

from t2v.cli.data import data
from t2v.cli.evaluate import evaluate
from t2v.cli.generate import extend, generate
from t2v.cli.generator import generator
from t2v.cli.recipe import recipe
from t2v.cli.serve import serve
from t2v.cli.tokenizer import tokenizer

# Errors a user can fix (bad path, bad video, bad size, bad config): shown as one line, no traceback.
# FloatingPointError: training diverged (non-finite losses).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
               KeyError, FloatingPointError)

# Operating-system refusals a user can fix, by errno: what was refused and the fix.
_WRITE_FIX = "free space on the device or choose another output"
OS_ERRORS = {
    errno.ENOSPC: ("cannot write", _WRITE_FIX),
    errno.EDQUOT: ("cannot write", "free space within your disk quota or choose another output"),
    errno.EROFS: ("cannot write", "choose an output on a writable file system"),
    errno.EACCES: ("cannot access", "check its permissions or choose another path"),
    errno.EPERM: ("cannot access", "check its permissions or choose another path"),
}


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
cli.add_command(serve)


# core/atomic.py's temporary siblings, `.<name>.<random>.tmp[suffix]`: an error names the output instead
_TEMP_SIBLING = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp[^/]*$")


def shown_path(path: str | bytes | os.PathLike) -> str:
    """`path` with each temporary sibling replaced by the output it stands for (`dir/.out.mp4.k2j4h1x0.tmp.mp4` →
    `dir/out.mp4`, `.shapes.x1y2z3w4.tmp/videos/0.mp4` → `shapes/videos/0.mp4`)."""
    parts = [(found.group(1) if (found := _TEMP_SIBLING.match(part)) else part)
             for part in Path(os.fsdecode(path)).parts]
    return str(Path(*parts)) if parts else os.fsdecode(path)


def os_error_message(error: BaseException) -> str | None:
    """`<what> <path>: <reason>; <fix>` for a disk-full, read-only or permission error, else None. An OSError
    names its errno and usually its path; a safetensors write names only the OS error in its text."""
    if isinstance(error, OSError):
        code, path, reason = error.errno, error.filename, error.strerror
    elif isinstance(error, SafetensorError) and (found := re.search(r"\(os error (\d+)\)", str(error))):
        code, path, reason = int(found.group(1)), None, None
    else:
        return None
    if code not in OS_ERRORS:
        return None
    what, fix = OS_ERRORS[code]
    reason = (reason or os.strerror(code)).lower()
    shown = f" {shown_path(path)}" if isinstance(path, (str, bytes, os.PathLike)) else ""
    return f"{what}{shown}: {reason}; {fix}"


def format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   line: str | None = None) -> str:
    """A warning as one line `Warning: <message>`, without the source location and line (`warnings.formatwarning`;
    code that records warnings, `catch_warnings(record=True)`, still gets them)."""
    return "Warning: " + " ".join(str(message).splitlines()) + "\n"


def main() -> None:
    """Console entry point: run the click group, printing user errors (and disk-full, read-only and permission
    errors) as `Error: …` on one line, and warnings as `Warning: …`; T2V_DEBUG=1 shows tracebacks and warnings'
    source lines instead."""
    debug = bool(os.environ.get("T2V_DEBUG"))
    formatwarning = warnings.formatwarning
    if not debug:
        warnings.formatwarning = format_warning
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.exceptions.NoArgsIsHelpError as error:  # a group without its command: the help is the answer
        error.show()
        sys.exit(error.exit_code)
    except click.ClickException as error:  # one line, as for the library's errors, with where to look
        ctx = getattr(error, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if isinstance(error, click.UsageError) and ctx else ""
        click.echo(f"Error: {error.format_message()}{hint}", err=True)
        sys.exit(error.exit_code)
    except (OSError, SafetensorError) as error:
        message = os_error_message(error)
        if debug or (message is None and not isinstance(error, USER_ERRORS)):
            raise
        click.echo(f"Error: {message or error}", err=True)
        sys.exit(2)
    except USER_ERRORS as error:
        if debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        click.echo(f"Error: {message}", err=True)
        sys.exit(2)
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    main()
