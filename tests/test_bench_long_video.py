"""bench/long_video.py end to end on a random tiny pipeline (tiny numbers): the JSON's structure and ranges."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from conftest import load_bench, tiny_pipeline
from t2v.recipes.shapes.dataset import COLORS, DIRECTIONS, split_of
from t2v.recipes.shapes.verify_long import SEGMENT_ATTRIBUTES


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        yield load_bench("long_video", patch)


def test_spread_captions_and_turns(bench):
    captions = bench.spread_captions(8)
    assert len(set(captions)) == 8 and all(split_of(c) == "seen" for c in captions)
    assert {c.color for c in captions} == set(COLORS) and {c.direction for c in captions} == set(DIRECTIONS)
    turned = [bench.turned(c) for c in captions]
    assert all({c.direction, t.direction} in ({"left", "up"}, {"left", "down"}, {"right", "up"}, {"right", "down"})
               for c, t in zip(captions, turned))


def test_bench_runs_on_a_tiny_pipeline(bench, text, tmp_path, capsys):
    directory = tiny_pipeline(text).save_pretrained(tmp_path / "pipeline")
    out = tmp_path / "long_video.json"
    bench.main([str(directory), "--num", "2", "--frames", "40", "--short", "17", "--segment", "16",
                "--extend-frames", "16", "--ceiling-frames", "33", "--device", "cpu", "--threads", "1",
                "--out", str(out)])
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "bounce" in printed and "prompt change at frame 16" in printed and "ceiling" in printed and "JSON" in printed

    # 1. long generation: segments [0,17), [16,40) (a 23-step tail is a segment), each scored over both videos
    long = report["long"]
    assert [row["frames"] for row in long["segments"]] == [[0, 17], [16, 40]]
    for row in long["segments"]:
        assert row["num"] == 2 and all(0 <= row[name] <= 1 for name in (*SEGMENT_ATTRIBUTES, "overall"))
        assert row["s_per_frame"] > 0 and row["rss_mib"] > 50 and row["cuda_peak_mib"] is None
    assert len(long["videos"]) == 2 and all(len(v["segments"]) == 2 for v in long["videos"])
    memory = report["memory"]
    assert [memory["short"]["frames"], memory["long"]["frames"]] == [17, 40]
    assert all(m["peak_rss_mib"] >= m["loaded_rss_mib"] > 50 for m in memory.values())
    assert set(report["targets"]) == {"last_over_first_accuracy", "last_over_second_s_per_frame",
                                      "long_over_short_peak_memory"}
    assert report["targets"]["long_over_short_peak_memory"]["ratio"] > 0

    # 2. prompt change and 3. extension
    change = report["prompt_change"]
    assert change["num"] == 2 and 0 <= change["found_fraction"] <= 1 and change["at"] == 16
    assert all(v["found_at"] is None or 16 <= v["found_at"] <= 32 for v in change["videos"])
    extension = report["extension"]
    assert [v["split"] for v in extension["videos"]] == ["heldout", "seen"]
    assert extension["scores"]["all"]["num"] == 2 and 0 <= extension["scores"]["all"]["overall"] <= 1

    # 4. the tokenizer's ceiling: segments of 33-frame reconstructions
    ceiling = report["ceiling"]
    assert ceiling["frames"] == 33 and [row["frames"] for row in ceiling["segments"]] == [[0, 17], [16, 33]]
    assert all(row["num"] == 2 and 0 <= row["overall"] <= 1 for row in ceiling["segments"])


class IdentityTokenizer(torch.nn.Module):
    """Codes are the pixels: a tokenizer whose reconstructions are the true clips."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return video

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes


def test_ceiling_of_a_lossless_tokenizer_is_every_segment(bench):
    pipeline = SimpleNamespace(video_tokenizer=IdentityTokenizer(), info=SimpleNamespace(size=(64, 64)))
    ceiling = bench.reconstruction_ceiling(pipeline, bench.spread_captions(4), frames=129)
    assert [row["overall"] for row in ceiling["segments"]] == [1.0, 1.0]  # true clips after the mp4 round trip
