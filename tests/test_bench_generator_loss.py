"""bench/generator_loss.py on a random tiny generator: one row per (grid, rate), first and later frames apart."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import CAPTIONS, load_bench, tiny_generator
from t2v.tokenizer.shards import ShardWriter

CODEBOOK = 64


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as patch:
        yield load_bench("generator_loss", patch)


@pytest.fixture()
def shards(tmp_path):
    """Held-out clips of 2 latent frames at 2×2 / 8 fps (3) and 2×3 / 16 fps (2), plus longer ones and seen ones
    that must not count."""
    writer = ShardWriter(tmp_path / "tokens", codebook_size=CODEBOOK)
    rng = np.random.default_rng(0)
    for i, (t, h, w, fps, split) in enumerate([(2, 2, 2, 8.0, "heldout")] * 3 + [(2, 2, 3, 16.0, "heldout")] * 2 + [
            (3, 2, 2, 8.0, "heldout"), (2, 2, 2, 8.0, "seen")]):
        writer.add(rng.integers(0, CODEBOOK, (t, h, w)), {"caption": CAPTIONS[i], "split": split, "fps": fps})
    writer.close({})
    return tmp_path / "tokens"


def test_rows_per_grid_and_rate_with_first_and_later_frames(bench, shards, text, tmp_path, capsys):
    generator = tiny_generator(text_size=text.size, codebook_size=CODEBOOK).save_pretrained(tmp_path / "generator")
    text.save(generator)
    out = tmp_path / "loss.json"
    bench.main([str(generator), str(shards), "--window", "2", "--threads", "1", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(row["grid"], row["fps"], row["clips"]) for row in rows] == [([2, 2], 8.0, 3), ([2, 3], 16.0, 2)]
    for row in rows:
        # random weights: close to a uniform guess over the codebook
        assert all(0.5 * math.log(CODEBOOK) < row[k] < 1.5 * math.log(CODEBOOK)
                   for k in ("all", "first_frame", "later_frames"))
        # two latent frames of equal size: the whole is the mean of its halves
        assert row["all"] == pytest.approx((row["first_frame"] + row["later_frames"]) / 2, rel=1e-5)
    assert "2×3" in capsys.readouterr().out
