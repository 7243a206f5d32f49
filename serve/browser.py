"""A running `t2v serve` driven by a headless Chromium: what the browser test and the screenshot share.

The browser is the system's Chromium (`chromium` on PATH, or `T2V_CHROMIUM`), driven by playwright through its
`executable_path`: playwright's own browser download is not needed (and not reachable offline). Playwright rather
than selenium: one pip package with its driver inside, no chromedriver to match to the browser's version, and
waiting on the page's own state (`wait_for_function`) instead of sleeping.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Installed in a page: every change of the page's DOM records the status line and the newest frame's address of
# one tab, with the time (ms), whenever either changed. `window.t2vLog(prefix)` returns the records.
RECORDER = """prefix => {
  const log = [];
  const read = () => {
    const status = document.querySelector(`#${prefix}-status .prose`) || document.querySelector(`#${prefix}-status`);
    const image = document.querySelector(`#${prefix}-frame img`);
    return [status ? status.innerText.trim() : "", image ? image.getAttribute("src") : null];
  };
  const record = () => {
    const [status, frame] = read();
    const last = log[log.length - 1];
    if (!last || last.status !== status || last.frame !== frame) log.push({time: Date.now(), status, frame});
  };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                       attributes: true});
  record();
  window.t2vLogs = window.t2vLogs || {};
  window.t2vLogs[prefix] = log;
}"""


def find_chromium() -> str | None:
    """The system Chromium's path: `T2V_CHROMIUM`, else the first of `BROWSERS` on PATH; None if there is none."""
    named = os.environ.get("T2V_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(pipeline: str, out_dir: str | Path, port: int | None = None, timeout: float = 180,
                   extra: tuple[str, ...] = ()) -> Iterator[str]:
    """`t2v serve PIPELINE` on a free port of 127.0.0.1 (on the CPU), as a subprocess: yields its URL once the page
    answers, and stops it (SIGTERM, then SIGKILL) afterwards. Its output goes to `<out_dir>-serve.log` and gradio's
    cache to `<out_dir>-gradio/`, beside `out_dir`; a server that exits or does not answer within `timeout` seconds
    is a RuntimeError quoting that log."""
    port = port or free_port()
    out_dir = Path(out_dir)
    log_path = out_dir.parent / f"{out_dir.name}-serve.log"
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "t2v.cli.main", "serve", pipeline, "--port", str(port), "--device", "cpu",
               "--out-dir", str(out_dir), *extra]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ,
                                   "GRADIO_ANALYTICS_ENABLED": "False",
                                   "GRADIO_TEMP_DIR": str(out_dir.parent / f"{out_dir.name}-gradio")})
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {process.returncode}" if process.poll() is not None else \
                    f"did not answer in {timeout:g} s"
                raise RuntimeError(f"t2v serve {state}: {log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def chromium(executable: str | None = None) -> Iterator[object]:
    """A headless playwright Browser running the system Chromium (`find_chromium`)."""
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found: install it (apt-get install chromium) or set T2V_CHROMIUM")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, width: int = 1280, height: int = 900):
    """A new browser session (its own context) on the page, loaded, with the status recorder of both tabs."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(url)
    page.wait_for_selector("#gen-start")
    for prefix in ("gen", "ext"):
        page.evaluate(RECORDER, prefix)
    return page


def records(page, prefix: str = "gen") -> list[dict]:
    """The recorder's entries of tab `prefix` so far: {time (ms), status, frame (the image's address)}."""
    return page.evaluate("prefix => window.t2vLogs[prefix]", prefix)


def start_generation(page, prompt: str, frames: int) -> None:
    """Type the prompt and length in the Generate tab and press Generate."""
    page.locator("#gen-prompt textarea").fill(prompt)
    set_number(page, "#gen-length input", frames)
    page.click("#gen-start")


def set_number(page, selector: str, value: float) -> None:
    """Type a number into a field and leave it (gradio reads it on change)."""
    field = page.locator(selector)
    field.fill(f"{value:g}")
    field.press("Tab")
