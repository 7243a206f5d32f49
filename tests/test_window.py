"""generator/sample.py for any length: the rolling window's parity, bounded cache, context and prompt schedules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_generator
from t2v.generator.attention import decode_mask
from t2v.generator.sample import (Pending, SamplingConfig, decode_frame_sequential, decode_one, prefill, roll,
                                  run_pending, sample_codes)
from t2v.generator.window import Window

H, W = 2, 3  # latent grid of every test here
GREEDY = SamplingConfig(temperature=0, cfg_scale=1.0)


def frames_of(seed: int, count: int, codebook: int = 64) -> torch.Tensor:
    return torch.randint(0, codebook, (1, count, H, W), generator=torch.Generator().manual_seed(seed))


def rolled_logits(model, prefix: torch.Tensor, frames: torch.Tensor, first: int) -> torch.Tensor:
    """Cache the prefix and frames (1, c, h, w) from slot `first` but the last id, roll out the oldest frame, append
    the last id at its new slot: the logits for the next frame's first code."""
    vocab, hw = model.vocab, H * W
    c = frames.shape[1]
    cache = model.new_cache(1, vocab.prefix_len + c * hw)
    ids = torch.cat([prefix, vocab.video_ids(frames.reshape(1, -1))], dim=1)
    positions = torch.cat([vocab.prefix_positions(), vocab.video_positions(first, c, H, W)], dim=1)
    model(ids[:, :-1], positions[:, :-1], cache)
    roll(model, cache, hw, shift=first > 0)  # the video's first frame leaves without moving the rest
    assert cache.length == vocab.prefix_len + (c - 1) * hw - 1
    last_slot = first + c - 1 - (first > 0)
    cos, sin = model.rotary(vocab.video_positions(last_slot, 1, H, W)[:, -1:])
    return decode_one(model, frames.reshape(1, -1)[:, -1], (cos, sin), cache)


@pytest.mark.parametrize("first", [0, 1], ids=["the video's first frame leaves", "a later frame leaves"])
@torch.no_grad()
def test_after_a_roll_one_layer_logits_equal_a_fresh_prefill_of_the_window(first):
    model = tiny_generator(layers=1)
    prefix = model.vocab.prefix([3, 4, 5], (H, W), 8)[None]
    frames = frames_of(0, 4)
    # the window without the oldest frame: a continuation, from slot 1
    cache = model.new_cache(1, 100)
    fresh = run_pending(model, prefill(model, prefix, cache, frames[:, 1:], first=1), cache)
    torch.testing.assert_close(rolled_logits(model, prefix, frames, first), fresh, rtol=1e-5, atol=1e-5)


def query_logits(model, cache, pending: Pending, slot: int) -> torch.Tensor:
    """The first pass of the parallel strategy: the pending ids, then a query frame of MASK ids at `slot`."""
    hw = H * W
    ids = torch.cat([pending.ids, torch.full((1, hw), model.vocab.mask_id)], dim=1)
    query = model.rotary(model.vocab.video_positions(slot, 1, H, W))
    rotary = tuple(torch.cat(pair, dim=1) for pair in zip(pending.rotary, query))
    ahead = pending.ids.shape[1]
    return model(ids, cache=cache, rotary=rotary, attention=decode_mask(cache.length, ahead, hw, ids.device),
                 keep=ahead, logits_from=ahead)


@pytest.mark.parametrize("first", [0, 1], ids=["the video's first frame leaves", "a later frame leaves"])
@torch.no_grad()
def test_after_a_roll_a_query_frame_of_one_layer_sees_what_a_fresh_prefill_gives(first):
    """The parallel strategy's roll parity: cache frames 0 … c-2 (the last one pending), roll the oldest out, then
    the pending frame and the next frame's query logits equal those after a fresh prefill of the window."""
    model = tiny_generator(layers=1, decoding="masked")
    vocab, hw = model.vocab, H * W
    prefix = vocab.prefix([3, 4, 5], (H, W), 8)[None]
    frames = frames_of(0, 4)
    fresh_cache = model.new_cache(1, 100)
    fresh = query_logits(model, fresh_cache, prefill(model, prefix, fresh_cache, frames[:, 1:], first=1), 4)
    cache = model.new_cache(1, 100)
    pending = prefill(model, prefix, cache, frames, first=first)
    assert cache.length == vocab.prefix_len + 3 * hw and pending.ids.shape == (1, hw)
    roll(model, cache, hw, shift=first > 0)
    slot = first + 3 - (first > 0)  # the last frame's slot after the roll
    pending = Pending(pending.ids, model.rotary(vocab.video_positions(slot, 1, H, W)))
    rolled = query_logits(model, cache, pending, slot + 1)
    assert cache.length == fresh_cache.length == vocab.prefix_len + 3 * hw
    torch.testing.assert_close(rolled, fresh, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_after_a_roll_a_deep_cache_holds_the_first_layer_keys_of_a_fresh_prefill():
    """Layer 0's keys and values depend on ids and positions only, so after a roll they equal a fresh prefill's.
    Deeper layers' keys of the window's frames were computed while the dropped frame was there (as in any rolling
    cache): they carry its context on, which is why the one-layer model is the one whose logits match exactly."""
    model = tiny_generator(layers=3)
    vocab, hw = model.vocab, H * W
    prefix = vocab.prefix([7, 8], (H, W), 8)[None]
    frames = frames_of(1, 4)
    ids = torch.cat([prefix, vocab.video_ids(frames.reshape(1, -1))], dim=1)
    positions = torch.cat([vocab.prefix_positions(), vocab.video_positions(1, 4, H, W)], dim=1)
    rolled = model.new_cache(1, ids.shape[1])
    model(ids, positions, rolled)
    roll(model, rolled, hw)
    fresh = model.new_cache(1, ids.shape[1])
    run_pending(model, prefill(model, prefix, fresh, frames[:, 1:], first=1), fresh)
    assert rolled.length == fresh.length == vocab.prefix_len + 3 * hw
    torch.testing.assert_close(rolled.keys[0][:, :, :rolled.length], fresh.keys[0][:, :, :fresh.length],
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rolled.values[0][:, :, :rolled.length], fresh.values[0][:, :, :fresh.length])


DECODINGS = pytest.mark.parametrize("decoding", ["token", "masked"])


@DECODINGS
def test_windowed_sampling_keeps_the_cache_bounded_and_starts_like_the_unrolled_one(monkeypatch, decoding):
    model = tiny_generator(decoding=decoding)
    prefix = model.vocab.prefix([1, 2], (H, W), 8)[None]
    capacities = []
    new_cache = model.new_cache
    monkeypatch.setattr(model, "new_cache", lambda batch, capacity: capacities.append(capacity) or
                        new_cache(batch, capacity))
    rolled = sample_codes(model, prefix, (9, H, W), GREEDY, window=3)
    full = sample_codes(model, prefix, (9, H, W), GREEDY)
    assert capacities == [model.vocab.prefix_len + 3 * H * W, model.vocab.prefix_len + 9 * H * W]
    assert rolled.shape == full.shape == (1, 9, H, W)
    assert torch.equal(rolled[:, :3], full[:, :3])  # the first roll comes as the third frame completes
    assert not torch.equal(rolled, full)


@DECODINGS
def test_context_continues_a_video_as_if_it_had_been_sampled(decoding):
    model = tiny_generator(decoding=decoding)
    prefix = model.vocab.prefix([1, 2], (H, W), 8)[None]
    whole = sample_codes(model, prefix, (5, H, W), GREEDY)
    continued = sample_codes(model, prefix, (3, H, W), GREEDY, context=whole[:, :2])
    assert torch.equal(continued, whole[:, 2:])


@DECODINGS
def test_prompt_schedule_changes_the_caption_and_keeps_the_frames_so_far(decoding):
    model = tiny_generator(decoding=decoding)
    first, second = model.vocab.prefix([1, 2], (H, W), 8)[None], model.vocab.prefix([30, 31, 32], (H, W), 8)[None]
    plain = sample_codes(model, first, (5, H, W), GREEDY)
    # The same caption again at frame 2: a fresh prefill of the frames so far equals the cache it replaces.
    assert torch.equal(sample_codes(model, [(0, first), (2, first)], (5, H, W), GREEDY), plain)
    changed = sample_codes(model, [(0, first), (2, second)], (5, H, W), GREEDY)
    assert torch.equal(changed[:, :2], plain[:, :2]) and not torch.equal(changed[:, 2:], plain[:, 2:])
    # …and it is the second caption continuing the first two frames.
    assert torch.equal(changed[:, 2:], sample_codes(model, second, (3, H, W), GREEDY, context=plain[:, :2]))


def test_the_window_rule_gives_each_frame_at_most_w_minus_1_frames_before_it():
    frame = torch.zeros(1, H, W, dtype=torch.long)
    window = Window(3, (H, W), (torch.zeros(1, 4 * H * W, 8), torch.zeros(1, 4 * H * W, 8)), [frame] * 4)
    window.refill()  # a context of 4 frames: the last 2 stay, from slot 1 (they do not open the video)
    assert (len(window.frames), window.start, window.first, window.slot) == (2, 2, 1, 3)
    assert window.needs_roll()
    window.roll()
    assert (window.first, window.slot) == (1, 2)  # a later frame left: the others moved back one slot
    window.advance(frame)
    assert window.codes().shape == (1, 2, H, W) and window.rotary(1, 2)[0].shape == (1, 2, 8)
    opening = Window(3, (H, W), window.table)
    slots = []
    for _ in range(4):
        slots.append(opening.slot)
        if opening.needs_roll():
            opening.roll()
            slots.append(opening.slot)  # where the frame's last code goes
        opening.advance(frame)
    assert slots == [0, 1, 2, 2, 3, 2]  # the video's first frame left the rest at their slots, then they move back


def test_the_decoding_strategy_is_a_parameter_of_the_top_loop():
    model = tiny_generator()
    prefix = model.vocab.prefix([1, 2], (H, W), 8)[None]
    seen = []

    def recording(model, cache, window, pending, config, rng):
        seen.append((window.slot, len(window.frames)))
        return decode_frame_sequential(model, cache, window, pending, config, rng)

    config = SamplingConfig(temperature=1.0)
    codes = sample_codes(model, prefix, (6, H, W), config, torch.Generator().manual_seed(0), 3,
                         decode_frame=recording)
    assert torch.equal(codes, sample_codes(model, prefix, (6, H, W), config, torch.Generator().manual_seed(0), 3))
    assert seen == [(0, 0), (1, 1), (2, 2), (3, 2), (3, 2), (3, 2)]  # W-1 = 2 frames before each one from the third


def test_bad_windows_and_schedules_are_refused():
    model = tiny_generator()
    prefix = model.vocab.prefix([1], (H, W), 8)[None]
    with pytest.raises(ValueError, match="start at frame 0"):
        sample_codes(model, [(1, prefix)], (3, H, W), GREEDY)
    with pytest.raises(ValueError, match="at least 2 latent frames"):
        sample_codes(model, prefix, (3, H, W), GREEDY, window=1)


def test_training_windows_are_cut_at_random_offsets_and_noise_spares_the_labels(text, tmp_path):
    from conftest import CAPTIONS
    from t2v.generator.data import IGNORE, TokenSequences
    from t2v.generator.vocab import Vocab
    from t2v.tokenizer.shards import ShardWriter

    writer = ShardWriter(tmp_path / "tokens", codebook_size=64)
    clips = [np.random.default_rng(i).integers(0, 64, (t, H, W)) for i, t in enumerate((7, 7, 2))]
    for clip, caption in zip(clips, CAPTIONS):
        writer.add(clip, {"caption": caption, "split": "seen", "fps": 8.0})
    shards = writer.close({})
    vocab = Vocab(text.size, 64, 10, ((H, W),), (8.0,))
    data = TokenSequences(shards, text, vocab, split="seen", window=4)
    assert len(data) == 2  # the 2-frame clip is shorter than the window
    starts = set()
    for epoch in range(12):
        data.set_epoch(epoch)
        item = data[1]
        assert item["ids"].shape == (vocab.sequence_len(4, H, W),)
        window = vocab.codes(item["ids"][vocab.prefix_len: -1]).reshape(4, H, W).numpy()
        matches = [s for s in range(4) if np.array_equal(window, clips[1][s: s + 4])]
        assert len(matches) == 1
        starts.add(matches[0])
        # slots 0 … 3 for the clip's opening window, 1 … 4 for one that continues it
        assert torch.equal(item["positions"], vocab.positions(4, H, W, t_start=0 if matches[0] == 0 else 1))
    assert len(starts) >= 3 and 0 in starts  # any latent frame of the clip may open a window
    noisy = TokenSequences(shards, text, vocab, split="seen", window=4, context_noise=0.3)
    data.set_epoch(0)
    clean_item, noisy_item = data[0], noisy[0]
    assert torch.equal(noisy_item["labels"], clean_item["labels"])  # targets are the true codes
    changed = noisy_item["ids"] != clean_item["ids"]
    assert not changed[: vocab.prefix_len].any() and 0 < changed.sum() < 4 * H * W
    assert vocab.is_video(noisy_item["ids"][changed]).all()
    assert (clean_item["labels"] != IGNORE).sum() == 4 * H * W
    with pytest.raises(ValueError, match="at least 9 latent frames"):
        TokenSequences(shards, text, vocab, split="seen", window=9)


@pytest.mark.parametrize("window_weight", [0.0, 0.5, 1.0])
def test_window_weight_draws_clips_in_proportion_to_their_windows(text, tmp_path, window_weight):
    from conftest import CAPTIONS
    from t2v.generator.data import TokenSequences
    from t2v.generator.batches import draw_indices
    from t2v.generator.config import GeneratorDataConfig
    from t2v.generator.vocab import Vocab
    from t2v.tokenizer.shards import ShardWriter

    writer = ShardWriter(tmp_path / "tokens", codebook_size=64)
    for length, caption in zip((4, 12), CAPTIONS):  # 1 and 9 windows of 4 latent frames
        writer.add(np.zeros((length, H, W), dtype=np.int64), {"caption": caption, "split": "seen", "fps": 8.0})
    vocab = Vocab(text.size, 64, 10, ((H, W),), (8.0,))
    data = TokenSequences(writer.close({}), text, vocab, split="seen", window=4, window_weight=window_weight)
    rng = np.random.default_rng(0)
    draws = np.array(draw_indices(data, 20_000, rng))
    long_share = (draws == 1).mean()
    assert long_share == pytest.approx(9 ** window_weight / (1 + 9 ** window_weight), abs=0.015)
    if window_weight == 0:  # equal weights keep the plain integer draws of earlier runs
        assert np.array_equal(draws, np.random.default_rng(0).integers(2, size=20_000))
    with pytest.raises(ValueError, match="window_weight in"):
        GeneratorDataConfig(window=4, window_weight=1.5)
