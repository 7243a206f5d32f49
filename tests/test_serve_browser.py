"""`t2v serve shapes` in a subprocess, driven by a real headless Chromium (the system's, through playwright): the
frames reach the page while the video is still being generated, a second session's page answers meanwhile, the
mp4 downloads whole; bad input is a visible one-line error; the Extend tab continues an uploaded video.

Without Chromium or playwright the tests are skipped, except in CI (CI=true), where that is a failure."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from t2v.serve.browser import chromium, find_chromium, open_page, records, running_server, set_number, \
    start_generation

PROMPT = "a red circle moving left slowly"
FRAMES = 257  # 65 latent frames: 17 updates of the page, a few seconds on a CPU
PROGRESS = re.compile(r"frame (\d+) of (\d+)")


def required(found: bool, reason: str) -> None:
    """Skip without `found`, but fail in CI, where the browser test must run."""
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs Chromium)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        required(False, "playwright is not installed (pip install -e '.[dev]')")
    required(find_chromium() is not None, "no Chromium on PATH (apt-get install chromium, or set T2V_CHROMIUM)")
    with chromium() as found:
        yield found


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """(URL, videos folder) of `t2v serve shapes --out-dir …` on a free port."""
    out_dir = tmp_path_factory.mktemp("serve") / "videos"
    with running_server("shapes", out_dir) as url:
        yield url, out_dir


def download(page, selector: str, path):
    """Fetch the file the download link `selector` points to into `path`; its frames and fps."""
    from t2v.tokenizer.video_io import read_video

    href = page.get_attribute(selector, "href")
    response = page.request.get(href)
    assert response.ok, (href, response.status)
    path.write_bytes(response.body())
    return read_video(path)


def test_frames_reach_the_page_while_generating_then_the_mp4_downloads(browser, server, tmp_path):
    url, out_dir = server
    page = open_page(browser, url)

    page.click("#gen-start")  # no prompt: the CLI's one-line error, shown on the page; nothing is generated
    page.get_by_text("empty prompt in ''").first.wait_for(timeout=30_000)
    assert not list(out_dir.glob("*.mp4"))

    start_generation(page, PROMPT, FRAMES)
    page.wait_for_function("() => /frame \\d+ of/.test(document.querySelector('#gen-status').innerText)",
                           timeout=120_000)
    other = open_page(browser, url)  # a second session, while the first generates: its page answers
    set_number(other, "#gen-length input", 3)
    other.get_by_text("3 frames = 0.4 s at 8 fps").wait_for(timeout=30_000)
    answered = other.evaluate("Date.now()")

    link = '#gen-download a[href$=".mp4"]'
    page.wait_for_selector(link, timeout=240_000)
    log = records(page)
    finished = next(entry for entry in log if entry["status"].startswith("Done"))
    progress = [(entry, *map(int, found.groups())) for entry in log if (found := PROGRESS.search(entry["status"]))]
    counts = [done for _, done, _ in progress]
    assert {total for _, _, total in progress} == {FRAMES}
    assert len(set(counts)) >= 3 and counts == sorted(counts) and counts[0] < FRAMES, counts  # several updates
    assert all(entry["time"] <= finished["time"] for entry, _, _ in progress)
    assert len({entry["frame"] for entry, done, _ in progress if done < FRAMES and entry["frame"]}) >= 2, log
    assert answered < finished["time"], "the second session answered only after the generation ended"
    assert f"Done: {FRAMES} frames" in finished["status"]
    print(f"{len(set(counts))} updates over {(finished['time'] - progress[0][0]['time']) / 1000:.1f} s; the second "
          f"session answered {(finished['time'] - answered) / 1000:.1f} s before the end")

    video, fps = download(page, link, tmp_path / "downloaded.mp4")
    assert video.shape == (FRAMES, 64, 64, 3) and fps == 8
    assert video.reshape(FRAMES, -1).std(axis=1).mean() > 1  # frames, not a blank
    assert [path.suffix for path in out_dir.iterdir()] == [".mp4"]  # whole, written in place: no temporary left


def test_the_extend_tab_continues_an_uploaded_video(browser, server, tmp_path):
    from t2v.tokenizer.video_io import write_video

    url, out_dir = server
    clip = np.zeros((17, 64, 64, 3), np.uint8)
    for t in range(17):  # a red square moving right
        clip[t, 24:40, 8 + 2 * t: 24 + 2 * t, 0] = 220
    write_video(tmp_path / "clip.mp4", clip, fps=8)
    page = open_page(browser, url)
    page.get_by_role("tab", name="Extend").click()
    page.set_input_files("#ext-video input[type=file]", str(tmp_path / "clip.mp4"))
    page.locator("#ext-prompt textarea").fill("a red square moving right slowly")
    set_number(page, "#ext-length input", 2)
    page.get_by_label("seconds").last.check()
    page.get_by_text("2 seconds at the video's rate").wait_for(timeout=30_000)
    page.click("#ext-start")

    link = '#ext-download a[href$=".mp4"]'
    page.wait_for_selector(link, timeout=240_000)
    assert "Done: 16 frames" in records(page, "ext")[-1]["status"]  # 2 s at the video's 8 fps
    video, fps = download(page, link, tmp_path / "extended.mp4")
    assert video.shape == (17 + 16, 64, 64, 3) and fps == 8  # the upload, then its continuation
    assert np.abs(video[:17].astype(int) - clip).mean() < 8  # the upload first (through H.264 twice)
