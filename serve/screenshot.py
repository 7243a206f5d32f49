"""`python -m t2v.serve.screenshot`: docs/images/serve_generating.png, the page of `t2v serve` mid-generation.

Starts `t2v serve PIPELINE` on a free port (CPU), types a prompt in a headless Chromium (serve/browser.py), presses
Generate and takes the picture once a few updates have arrived and the video is still being generated; the PNG
is written atomically. Needs the `dev` extra (playwright) and the system Chromium.
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from t2v.core.atomic import atomic_file
from t2v.serve.browser import chromium, open_page, running_server, start_generation

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve_generating.png"


def capture(pipeline: str, out: Path, prompt: str, frames: int, updates: int) -> str:
    """Screenshot the Generate tab once its status says update `updates` of a `frames`-frame video (still
    generating); the status line it showed."""
    with tempfile.TemporaryDirectory(prefix="t2v-screenshot-") as scratch, \
            running_server(pipeline, Path(scratch) / "videos") as url, chromium() as browser:
        page = open_page(browser, url, width=1280, height=860)
        start_generation(page, prompt, frames)
        page.wait_for_function("least => { const found = /\\(update (\\d+)\\)/.exec(document.querySelector("
                               "'#gen-status').innerText); return found && Number(found[1]) >= least; }", arg=updates,
                               timeout=300_000)
        status = page.inner_text("#gen-status").strip()
        if not re.search(r"frame (\d+) of (\d+)", status) or status.startswith("Done"):
            raise RuntimeError(f"the generation ended before the screenshot: {status!r}; ask for more --frames")
        image = page.screenshot(full_page=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, suffix=".png") as tmp:
        tmp.write_bytes(image)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="shapes", help="what `t2v serve` serves (default: shapes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default: {DEFAULT_OUT})")
    parser.add_argument("--prompt", default="a red circle moving left slowly")
    parser.add_argument("--frames", type=int, default=513, help="the video's length: long enough to be caught "
                        "mid-way")
    parser.add_argument("--updates", type=int, default=3, help="take the picture at this update or later")
    args = parser.parse_args()
    status = capture(args.pipeline, args.out, args.prompt, args.frames, args.updates)
    print(f"{args.out}: {' '.join(status.split())}")


if __name__ == "__main__":
    main()
