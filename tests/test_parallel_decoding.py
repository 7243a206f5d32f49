"""Parallel in-frame decoding: the query layout and its mask, cache parity of a query frame, the strategy's passes,
seed determinism, `--steps` checks, and training + sampling a "masked" generator end to end.

(The rolling window's parity for the parallel strategy, and context / prompt changes with it, are in
test_window.py beside the token-by-token ones.)"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_main, tiny_generator, tiny_model
from t2v.generator.attention import PADDING, PREFIX, decode_mask, layout_mask
from t2v.generator.data import IGNORE, masked_share, query_sequence
from t2v.generator.pipeline import PipelineInfo, TextToVideo
from t2v.generator.sample import (SamplingConfig, frame_decoder, prefill, reveal_counts, sample_codes)
from t2v.generator.batches import collate

H, W = 2, 3
HW = H * W


def layout(model, frames: int, seed: int = 0, decoding: str = "masked", previous: bool = False):
    vocab = model.vocab
    codes = torch.randint(0, vocab.codebook_size, (frames, H, W), generator=torch.Generator().manual_seed(seed))
    ids = vocab.sequence([1, 2, 3], codes, 8)
    masked = masked_share(decoding, frames, HW, np.random.default_rng(seed))
    return codes, masked, query_sequence(ids, vocab.positions(frames, H, W), frames, HW, vocab, masked,
                                         previous=previous)


# --- the layout and its mask ---
def test_query_layout_holds_clean_frames_then_queries_with_labels_on_the_masked_codes():
    model = tiny_generator(decoding="masked")
    vocab, P = model.vocab, model.vocab.prefix_len
    codes, masked, item = layout(model, 3)
    end = P + 3 * HW
    assert item["ids"].shape == item["labels"].shape == (end + 3 * HW,) and item["positions"].shape == (3, end + 3 * HW)
    assert torch.equal(item["ids"][P:end], vocab.video_ids(codes.reshape(-1)))  # the clean frames
    hidden = torch.from_numpy(masked.reshape(-1))
    queries = item["ids"][end:]
    assert torch.all(queries[hidden] == vocab.mask_id) and torch.equal(queries[~hidden], item["ids"][P:end][~hidden])
    assert torch.all(item["labels"][:end] == IGNORE)
    assert torch.equal(item["labels"][end:][hidden], codes.reshape(-1)[hidden])
    assert torch.all(item["labels"][end:][~hidden] == IGNORE)
    assert torch.equal(item["positions"][:, end:], item["positions"][:, P:end])  # a query sits at its frame's place
    assert item["frame"].tolist() == [PREFIX] * P + [0] * HW + [1] * HW + [2] * HW + [0] * HW + [1] * HW + [2] * HW
    assert not item["guess"].any()
    # query_input "previous": a hidden code reads the code at its place one latent frame earlier, flagged as a
    # guess (the first frame's read MASK)
    _, _, guessed = layout(model, 3, previous=True)
    earlier = torch.cat([torch.full((HW,), vocab.mask_id), vocab.video_ids(codes.reshape(-1))[:-HW]])
    assert torch.equal(guessed["ids"][end:][hidden], earlier[hidden])
    assert torch.equal(guessed["guess"][end:], hidden & (torch.arange(3 * HW) >= HW))
    assert not guessed["guess"][:end].any() and torch.equal(guessed["labels"], item["labels"])
    # "masked": at least one code per frame, the share drawn per frame; "frame": every code
    shares = masked_share("masked", 400, HW, np.random.default_rng(1)).sum(axis=1)
    assert shares.min() >= 1 and shares.max() == HW and 0.5 < shares.mean() / HW < 0.75  # E[cos(πu/2)] ≈ 0.64
    assert masked_share("frame", 2, HW, np.random.default_rng(1)).all()


def test_layout_mask_clean_frames_see_their_past_queries_see_the_past_and_themselves():
    # prefix of 2, two clean frames of 2 ids, two query frames of 2 ids, one padding id
    frame = torch.tensor([[PREFIX, PREFIX, 0, 0, 1, 1, 0, 0, 1, 1, PADDING]])
    query = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    mask = layout_mask(frame, query)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # the prefix: causal
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # clean frame 0: the prefix and all of itself
        [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # clean frame 1: and frame 0
        [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0],  # query frame 0: the prefix and itself
        [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0],  # query frame 1: the prefix, clean frame 0 and itself
        [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # padding: only padding
    ]
    assert decode_mask(3, 2, 2, torch.device("cpu"))[0, 0].int().tolist() == [
        [1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0], [1] * 7, [1] * 7]


def test_collate_pads_a_query_layout_with_frames_nothing_attends_to():
    model = tiny_generator(decoding="frame")
    long, short = layout(model, 3, decoding="frame")[2], layout(model, 2, decoding="frame")[2]
    batch = collate([long, short])
    n = len(short["ids"])
    assert torch.all(batch["frame"][1, n:] == PADDING) and torch.all(batch["query"][1, n:])
    assert torch.all(batch["labels"][1, n:] == IGNORE) and torch.equal(batch["frame"][0], long["frame"])


# --- the strategy ---
@pytest.mark.parametrize("levels", [[], [4, 4, 4]], ids=["plain codes", "factorized FSQ codes"])
@pytest.mark.parametrize("frame", [0, 2], ids=["first frame", "third frame"])
@pytest.mark.parametrize("previous", [False, True], ids=["MASK queries", "guesses from the frame before"])
@torch.no_grad()
def test_a_cached_query_frame_gives_the_logits_of_the_whole_uncached_sequence(levels, frame, previous):
    """Cache parity: the strategy's pass (the prefill's pending block, then a query frame) against a cache gives
    the logits the training layout gives for that query frame, computed in one uncached forward."""
    model = tiny_generator(decoding="masked", code_levels=levels)
    vocab, P = model.vocab, model.vocab.prefix_len
    codes, _, item = layout(model, 3, seed=4, previous=previous)
    full = model(item["ids"][None], item["positions"], attention=layout_mask(item["frame"][None], item["query"][None]),
                 guesses=item["guess"][None])
    start = P + 3 * HW + frame * HW
    cache = model.new_cache(1, P + 3 * HW)
    pending = prefill(model, vocab.prefix([1, 2, 3], (H, W), 8)[None], cache, codes[None, :frame])
    assert cache.length == P - 1 + max(0, frame - 1) * HW + (frame > 0)  # all but the last block
    ids = torch.cat([pending.ids, item["ids"][None, start: start + HW]], dim=1)
    rotary = tuple(torch.cat(pair, dim=1) for pair in zip(pending.rotary, model.rotary(
        vocab.video_positions(frame, 1, H, W))))
    ahead = pending.ids.shape[1]
    guesses = torch.cat([torch.zeros(ahead, dtype=torch.bool), item["guess"][start: start + HW]])[None]
    cached = model(ids, cache=cache, rotary=rotary, attention=decode_mask(cache.length, ahead, HW, ids.device),
                   keep=ahead, logits_from=ahead, guesses=guesses)
    assert cache.length == P + frame * HW  # the pending block kept, the queries not
    torch.testing.assert_close(cached, full[:, start: start + HW], rtol=1e-5, atol=1e-5)


def test_reveal_counts_follow_the_cosine_schedule_and_reveal_something_every_pass():
    assert reveal_counts(1, 64) == [64] and reveal_counts(64, 64) == [1] * 64
    counts = reveal_counts(8, 64)
    assert sum(counts) == 64 and min(counts) >= 1 and counts == sorted(counts)  # few at first, more later
    for n in (1, 6, 64):
        for k in range(1, n + 1):
            counts = reveal_counts(k, n)
            assert len(counts) == k and sum(counts) == n and min(counts) >= 1


def count_passes(model, monkeypatch) -> list[int]:
    """Record the number of ids of every forward pass of `model`."""
    lengths = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, *a, **k: lengths.append(ids.shape[1]) or forward(ids, *a, **k))
    return lengths


@pytest.mark.parametrize("steps", [1, 3, HW])
def test_a_frame_takes_exactly_steps_passes_and_steps_hw_reveals_one_code_per_pass(steps, monkeypatch):
    model = tiny_generator(decoding="masked")
    prefix = model.vocab.prefix([1, 2], (H, W), 8)[None]
    lengths = count_passes(model, monkeypatch)
    codes = sample_codes(model, prefix, (4, H, W), SamplingConfig(steps=steps), torch.Generator().manual_seed(0))
    assert codes.shape == (1, 4, H, W)
    # the prefill (all but BOV), then `steps` passes per frame: the first with the pending block ahead of the query
    assert len(lengths) == 1 + 4 * steps
    firsts = lengths[1::steps]
    assert firsts == [1 + HW] + [2 * HW] * 3 and all(n == HW for i, n in enumerate(lengths[1:]) if i % steps)


def test_the_parallel_strategy_is_seeded_and_guidance_runs_both_rows():
    model = tiny_generator(decoding="masked")
    prefix = model.vocab.prefix([1, 2], (H, W), 8)[None].repeat(3, 1)
    config = SamplingConfig(temperature=1.0, top_k=0, cfg_scale=3.0)
    first = sample_codes(model, prefix, (3, H, W), config, torch.Generator().manual_seed(7), window=2)
    again = sample_codes(model, prefix, (3, H, W), config, torch.Generator().manual_seed(7), window=2)
    other = sample_codes(model, prefix, (3, H, W), config, torch.Generator().manual_seed(8), window=2)
    assert torch.equal(first, again) and not torch.equal(first, other)
    unguided = sample_codes(model, prefix, (3, H, W), SamplingConfig(temperature=1.0, top_k=0, cfg_scale=1.0),
                            torch.Generator().manual_seed(7), window=2)
    assert not torch.equal(first, unguided)


def test_greedy_one_pass_takes_the_argmax_of_every_place_reading_the_frame_before():
    """One pass per frame, greedy: each frame is the argmax of the training layout's query logits, the first read
    from MASK, the second from the first frame's codes flagged as guesses."""
    model = tiny_generator(decoding="frame")
    vocab = model.vocab
    prefix = vocab.prefix([1, 2], (H, W), 8)[None]
    codes = sample_codes(model, prefix, (2, H, W), SamplingConfig(temperature=0, cfg_scale=1.0))
    ids = vocab.sequence([1, 2], codes[0], 8)
    item = query_sequence(ids, vocab.positions(2, H, W), 2, HW, vocab, np.ones((2, HW), dtype=bool), previous=True)
    with torch.no_grad():
        logits = model(item["ids"][None], item["positions"], attention=layout_mask(item["frame"][None],
                       item["query"][None]), guesses=item["guess"][None], logits_from=vocab.prefix_len + 2 * HW)
    assert item["guess"].sum() == HW
    assert torch.equal(codes.reshape(1, -1), logits.argmax(-1))


def test_steps_a_generator_cannot_take_are_refused_with_one_line():
    token, frame, masked = (tiny_generator(decoding=d) for d in ("token", "frame", "masked"))
    assert frame_decoder(token, HW, (H, W)).__name__ == "decode_frame_sequential"  # h·w passes: its own way
    for model, steps in ((token, 2), (frame, 2), (masked, HW + 1)):
        with pytest.raises(ValueError, match=f"--steps {steps}") as error:
            frame_decoder(model, steps, (H, W))
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="at least 1"):
        SamplingConfig(steps=0)
    assert frame_decoder(masked, None, (H, W)).keywords == {"passes": None}  # the generator's own (≤ h·w)


@pytest.fixture(scope="module")
def masked_pipeline_dir(text, tmp_path_factory):
    video_tokenizer = tiny_model()
    generator = tiny_generator(text_size=text.size, codebook_size=video_tokenizer.codebook_size, decoding="masked",
                               frame_passes=2)
    pipeline = TextToVideo(video_tokenizer, generator, text, PipelineInfo(fps=8, size=(16, 16), frames=5))
    return pipeline.save_pretrained(tmp_path_factory.mktemp("masked") / "pipeline")


def test_cli_generate_takes_steps_and_refuses_bad_ones_in_one_line(masked_pipeline_dir, tmp_path, monkeypatch,
                                                                     capsys):
    args = ["generate", str(masked_pipeline_dir), "a red circle moving left slowly"]
    code, _, _ = run_main([*args, "-o", str(tmp_path / "a.gif"), "--steps", "4"], monkeypatch, capsys)
    assert code == 0 and (tmp_path / "a.gif").stat().st_size > 0
    loaded = TextToVideo.from_pretrained(masked_pipeline_dir)
    assert loaded.generator.config.decoding == "masked" and loaded.generator.config.frame_passes == 2
    for bad, says in (("0", "at least 1"), ("5", "1 to 4 forward passes")):  # a 2x2 latent frame: 4 codes
        code, _, err = run_main([*args, "-o", str(tmp_path / f"b{bad}.gif"), "--steps", bad], monkeypatch, capsys)
        assert code != 0 and says in err and len(err.strip().splitlines()) == 1 and err.startswith("Error:")
        assert not (tmp_path / f"b{bad}.gif").exists()


def test_a_masked_generator_trains_keeps_its_decoding_and_samples(tmp_path):
    """Forty DeepSpeed steps on learnable fake shards: the masked objective's loss falls, the held-out loss is logged,
    and the exported generator keeps its decoding and samples with it."""
    from test_generator_train import train_config, write_fake_shards
    from t2v.generator.config import GeneratorConfig
    from t2v.generator.model import VideoGenerator
    from t2v.generator.train import train

    shards = write_fake_shards(tmp_path / "shards")
    model = GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128, decoding="masked")
    result = train(train_config(shards, steps=40, model=model, checkpoint_every=20), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert result.steps == 40 and losses[-1] < 0.9 * losses[0]
    held_out = [row for row in rows if "eval_loss" in row]
    assert [row["step"] for row in held_out] == [20, 40] and held_out[1]["eval_loss"] < held_out[0]["eval_loss"]
    generator = VideoGenerator.from_pretrained(tmp_path / "run")
    assert generator.config.decoding == "masked" and generator.vocab.mask
    vocab = generator.vocab
    prefix = vocab.prefix([1, 2], vocab.sizes[0], vocab.rates[0])[None]
    codes = sample_codes(generator, prefix, (2, *vocab.sizes[0]), SamplingConfig(steps=3))
    assert codes.shape == (1, 2, *vocab.sizes[0]) and codes.max() < vocab.codebook_size

