"""`t2v serve`: a local web page (gradio) that generates and extends videos with one pipeline, loaded once.

The pipeline, the output folder, gradio's presence and the address (a free port on a known host) are checked
before torch, gradio and the models are imported (seconds), so a mistake is answered at once with one line. The
page itself is serve/app.py; this command only checks, loads and launches.
"""
from __future__ import annotations

import errno
import importlib.util
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import click

from t2v.cli.options import PIPELINE, check_pipeline, device_options, load_pipeline


def check_address(host: str, port: int) -> None:
    """Refuse an address the server could not listen on (a port in use, an unknown host) before anything loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"cannot serve on {host}:{port}: unknown host ({error.strerror}); use an address of this "
                         "machine, e.g. --host 127.0.0.1 or --host 0.0.0.0") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closed port is free
        try:
            probe.bind(address)
        except OSError as error:
            fix = "choose another --port" if error.errno == errno.EADDRINUSE else "use an address of this machine"
            raise ValueError(f"cannot serve on {host}:{port}: {(error.strerror or str(error)).lower()}; {fix}") \
                from None


def check_out_dir(out_dir: Path | None) -> None:
    """Refuse an output folder that is a file."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out-dir {out_dir} is a file, not a folder: name a folder for the videos")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl+C does (the temporary folder is removed)


@click.command()
@click.argument("pipeline_dir", metavar="PIPELINE", type=PIPELINE)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface, reachable from other machines).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@device_options
@click.option("--out-dir", type=click.Path(path_type=Path), help="Keep the videos made in this folder (default: a "
              "temporary folder, removed when the server stops).")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Generations run at once (every browser session together); more wait in the queue.")
@click.option("--max-frames", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Longest video a page may ask for, in frames.")
def serve(pipeline_dir: Path, host: str, port: int, device: str, dtype: str, out_dir: Path | None, concurrency: int,
          max_frames: int) -> None:
    """Serve a web page that generates videos with PIPELINE (a pipeline directory, or the name of one the package
    ships: `shapes`), showing the frames as they are generated, and extends uploaded videos. The pipeline is
    loaded once and shared by every browser session. Needs gradio (`pip install 't2v[serve]'`).

    \b
    Examples:
      t2v serve shapes                      # then open http://127.0.0.1:7860
      t2v serve runs/shapes/pipeline --port 8000 --device cuda --dtype bfloat16 --out-dir videos/
      t2v serve shapes --host 0.0.0.0 --concurrency 4   # reachable from other machines
    """
    check_pipeline(pipeline_dir)
    check_out_dir(out_dir)
    if importlib.util.find_spec("gradio") is None:
        raise click.ClickException("t2v serve needs gradio: pip install 't2v[serve]' (or pip install gradio)")
    check_address(host, port)
    click.echo(f"loading {pipeline_dir} …")
    pipeline = load_pipeline(pipeline_dir, device, dtype)
    from t2v.serve.app import build_app, launch

    folder = out_dir or Path(tempfile.mkdtemp(prefix="t2v-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        name = pipeline_dir.parent.name if pipeline_dir.name == "pipeline" else pipeline_dir.name  # runs/x/pipeline
        app = build_app(pipeline, folder.resolve(), name or str(pipeline_dir), concurrency, max_frames)
        launch(app, host, port, folder.resolve(), on_ready=lambda url: click.echo(
            f"serving {pipeline_dir} on {pipeline.device} ({str(pipeline.dtype).removeprefix('torch.')}) at {url} "
            f"(Ctrl+C stops); videos go to {folder}"))
    finally:
        if out_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
