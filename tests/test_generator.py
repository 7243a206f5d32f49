"""Generator: id layout, sequence packing and loss mask, KV-cache parity, sampling, the TextToVideo pipeline."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import CAPTIONS, tiny_generator, tiny_model, tiny_pipeline
from t2v.generator.data import IGNORE, TokenSequences, shift_labels
from t2v.generator.attention import causal_mask as attention_mask
from t2v.generator.model import VideoGenerator
from t2v.generator.config import GeneratorConfig
from t2v.generator.pipeline import TextToVideo
from t2v.generator.sample import SamplingConfig, draw, filter_logits, sample_codes
from t2v.generator.text import TextTokenizer
from t2v.generator.vocab import BOS, BOV, EOV, NULL, PAD, Vocab
from t2v.tokenizer.shards import ShardWriter


@pytest.fixture(scope="module")
def pipeline(text) -> TextToVideo:
    return tiny_pipeline(text)


# --- vocab ---
def test_vocab_ranges_are_disjoint_and_cover_every_id():
    vocab = Vocab(text_size=30, codebook_size=100, max_text_len=6, sizes=((8, 8), (8, 12)), rates=(8.0, 16.0))
    assert (vocab.size_start, vocab.rate_start, vocab.text_start, vocab.video_start, vocab.size) == (5, 7, 9, 39, 139)
    assert len({PAD, BOS, BOV, EOV, NULL}) == 5 and max(PAD, BOS, BOV, EOV, NULL) < vocab.size_start
    codes = torch.arange(100)
    assert torch.equal(vocab.codes(vocab.video_ids(codes)), codes)
    assert vocab.is_video(vocab.video_ids(codes)).all() and not vocab.is_video(torch.arange(35)).any()
    with pytest.raises(ValueError, match="video range"):
        vocab.codes(torch.tensor([38]))
    for sizes, rates in ((((8, 8), (8, 8)), (8.0,)), (((8, 8),), (8.0, 8.0001)), ((), (8.0,)), (((8, 8),), (0.0,))):
        with pytest.raises(ValueError, match="size and rate tables"):
            Vocab(30, 100, 6, sizes, rates)


def test_sequence_layout_and_positions():
    vocab = Vocab(text_size=30, codebook_size=100, max_text_len=4, sizes=((2, 2), (2, 3)), rates=(8.0, 16.0))
    codes = torch.arange(2 * 2 * 3).view(2, 2, 3)
    ids = vocab.sequence([7, 8], codes, fps=16)
    # [BOS][caption, padded][SIZE: grid (2, 3) is the 2nd size][FPS: 16 is the 2nd rate][BOV]
    assert ids.tolist()[:8] == [BOS, 16, 17, PAD, PAD, vocab.size_start + 1, vocab.rate_start + 1, BOV]
    assert ids[-1] == EOV and len(ids) == vocab.sequence_len(2, 2, 3) == 8 + 12 + 1
    assert torch.equal(vocab.codes(ids[8:-1]), codes.flatten())
    assert vocab.prefix(None, (2, 2), 8).tolist() == [BOS, NULL, PAD, PAD, PAD, 5, 7, BOV]
    assert torch.equal(vocab.null_prefix(ids[:8]), vocab.prefix(None, (2, 3), 16))  # size and rate ids kept
    positions = vocab.positions(2, 2, 3)
    assert positions.shape == (3, len(ids))
    assert positions[:, :8].tolist() == [list(range(8))] * 3
    # the video id of latent (t=1, h=0, w=2) sits at index 8 + 1·6 + 2 and at position P + (1, 0, 2)
    assert positions[:, 8 + 6 + 2].tolist() == [9, 8, 10]
    with pytest.raises(ValueError, match="max_text_len"):
        vocab.prefix([1, 2, 3, 4, 5], (2, 2), 8)
    with pytest.raises(ValueError, match=r"grid 2x3 \(WxH\) has no size id: the generator knows 2x2, 3x2"):
        vocab.prefix([1], (3, 2), 8)
    with pytest.raises(ValueError, match="12 fps has no rate id: the generator knows 8, 16 fps"):
        vocab.prefix([1], (2, 2), 12)


def test_nearest_trained_grid_and_rate():
    vocab = Vocab(30, 100, 4, sizes=((8, 8), (8, 12), (12, 8)), rates=(8.0, 16.0))
    assert vocab.nearest_grid((4, 6)) == (8, 12)  # the aspect ratio first (3:2) ...
    assert vocab.nearest_grid((16, 16)) == (8, 8)
    assert vocab.nearest_grid((9, 7)) == (12, 8)  # ... 9:7 is nearer 3:2 portrait than 1:1
    assert vocab.nearest_rate(10) == 8.0 and vocab.nearest_rate(12) == 16.0 and vocab.nearest_rate(30) == 16.0
    assert vocab.knows_rate(16.00001) and not vocab.knows_rate(15.9)


# --- text ---
def test_text_tokenizer_round_trip_and_bad_prompts(text, tmp_path):
    pieces = text.encode("A  Red circle moving LEFT slowly ")
    assert text.decode(pieces) == "a red circle moving left slowly"
    text.save(tmp_path)
    assert TextTokenizer.load(tmp_path).encode("a red circle moving left slowly") == pieces
    with pytest.raises(ValueError, match="empty"):
        text.encode("   ")
    with pytest.warns(UserWarning, match="never saw.*purple"):
        text.encode("a purple circle moving left slowly")
    with pytest.warns(UserWarning, match="truncated to the first 10"):
        assert len(text.encode(" ".join(["red circle"] * 20))) == 10


# --- data ---
def test_shift_labels_masks_everything_but_video_targets():
    vocab = Vocab(text_size=30, codebook_size=100, max_text_len=4, sizes=((1, 2),), rates=(8.0,))
    ids = vocab.sequence([7], torch.tensor([[[5, 6]]]), 8)
    labels = shift_labels(ids, vocab)
    assert labels.tolist() == [IGNORE] * 7 + [5, 6, IGNORE, IGNORE]


@pytest.fixture()
def shards(tmp_path):
    writer = ShardWriter(tmp_path / "tokens", codebook_size=64)
    rng = np.random.default_rng(0)
    for i, caption in enumerate(CAPTIONS[:12]):
        writer.add(rng.integers(0, 64, (2, 2, 2)), {"caption": caption, "split": "seen" if i % 4 else "heldout"})
    return writer.close({"fps": 8.0})


def test_token_sequences_pack_captions_and_drop_them_for_guidance(shards, text):
    vocab = Vocab(text.size, 64, 10, ((2, 2),), (8.0,))
    data = TokenSequences(shards, text, vocab, split="seen", caption_dropout=0.0)
    assert len(data) == 9
    item = data[0]
    assert item["ids"].shape == (vocab.sequence_len(2, 2, 2),) and item["positions"].shape == (3, len(item["ids"]))
    assert torch.equal(item["ids"][: vocab.prefix_len], vocab.prefix(text.encode(data.caption(0)), (2, 2), 8))
    assert (item["labels"] != IGNORE).sum() == 8
    dropped = TokenSequences(shards, text, vocab, split="seen", caption_dropout=1.0)[0]
    assert torch.equal(dropped["ids"][: vocab.prefix_len], vocab.prefix(None, (2, 2), 8))
    assert torch.equal(dropped["ids"][vocab.prefix_len:], item["ids"][vocab.prefix_len:])
    half = TokenSequences(shards, text, vocab, split="seen", caption_dropout=0.5, seed=3)
    draws = [bool(half[i]["ids"][1] == NULL) for i in range(9)]
    assert draws == [bool(half[i]["ids"][1] == NULL) for i in range(9)]  # same (seed, epoch, index): same draw
    with pytest.raises(ValueError, match="codes"):
        TokenSequences(shards, text, Vocab(text.size, 128, 10, ((2, 2),), (8.0,)))
    with pytest.raises(ValueError, match="of a latent grid and frame rate the generator knows"):
        TokenSequences(shards, text, Vocab(text.size, 64, 10, ((2, 2),), (16.0,)))


# --- model and cache ---
def test_attention_mask_for_a_chunk_after_cached_ids():
    assert attention_mask(1, 9, torch.device("cpu")) is None and attention_mask(4, 4, torch.device("cpu")) is None
    mask = attention_mask(2, 5, torch.device("cpu"))[0, 0]
    assert mask.tolist() == [[True, True, True, True, False], [True] * 5]


@pytest.mark.parametrize("levels", [[], [4, 4, 4]], ids=["plain codes", "factorized FSQ codes"])
def test_cached_logits_equal_uncached_logits(levels):
    model = tiny_generator(code_levels=levels)
    vocab = model.vocab
    codes = torch.randint(0, 64, (3, 2, 3), generator=torch.Generator().manual_seed(1))
    ids = torch.stack([vocab.sequence([1, 2, 3], codes, 8), vocab.sequence(None, codes, 8)])
    positions = vocab.positions(3, 2, 3)
    with torch.no_grad():
        full = model(ids, positions)
        cache = model.new_cache(2, ids.shape[1])
        # prefill, a chunk of several ids, then one id at a time
        pieces = [model(ids[:, :12], positions[:, :12], cache), model(ids[:, 12:17], positions[:, 12:17], cache)]
        pieces += [model(ids[:, j: j + 1], positions[:, j: j + 1], cache) for j in range(17, ids.shape[1])]
    assert cache.length == ids.shape[1]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_a_transformers_without_the_cache_argument_is_refused(monkeypatch):
    """Releases before 5.24 name the layers' cache `past_key_values` and would drop ours silently (the parity test
    above fails on 5.23): the model refuses to build there, naming the version to install."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLDecoderLayer

    def old_forward(self, hidden_states, attention_mask=None, past_key_values=None, position_embeddings=None):
        raise AssertionError("not called")

    monkeypatch.setattr(Qwen2VLDecoderLayer, "forward", old_forward)
    with pytest.raises(RuntimeError, match=r"install transformers>=5\.24"):
        tiny_generator()


def test_logits_do_not_depend_on_absolute_offsets_only_on_differences():
    model = tiny_generator()
    vocab = model.vocab
    ids = vocab.sequence([4, 5], torch.randint(0, 64, (2, 2, 2)), 8)[None]
    positions = vocab.positions(2, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, positions), model(ids, positions + 7), rtol=1e-4, atol=1e-4)


def test_save_and_load_generator(tmp_path):
    model = tiny_generator()
    model.save_pretrained(tmp_path / "g")
    loaded = VideoGenerator.from_pretrained(tmp_path / "g")
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="no generator"):
        VideoGenerator.from_pretrained(tmp_path / "missing")


# --- sampling ---
def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 0, 0.1)).tolist() == [[False, True, True, True]]


def test_draw_makes_the_draws_of_torch_multinomial():
    # draw() runs multinomial's own one-sample algorithm without its checks: a seed keeps its video.
    logits = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    config = SamplingConfig(cfg_scale=1.0, temperature=1.0, top_k=0)
    for seed in range(20):
        expected = torch.multinomial(logits.softmax(-1), 1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(draw(logits, config, torch.Generator().manual_seed(seed)), expected.squeeze(-1))


def test_sampling_is_seeded_and_guidance_changes_the_draw():
    model = tiny_generator()
    prefixes = torch.stack([model.vocab.prefix([1, 2], (2, 3), 8), model.vocab.prefix([3], (2, 3), 8)])
    config = SamplingConfig(temperature=1.0, cfg_scale=1.0)

    def run(seed: int, config: SamplingConfig) -> torch.Tensor:
        return sample_codes(model, prefixes, (2, 2, 3), config, torch.Generator().manual_seed(seed))

    first = run(0, config)
    assert first.shape == (2, 2, 2, 3) and first.min() >= 0 and first.max() < 64
    assert torch.equal(first, run(0, config)) and not torch.equal(first, run(1, config))
    guided = SamplingConfig(temperature=1.0, cfg_scale=4.0)
    assert torch.equal(run(0, guided), run(0, guided)) and not torch.equal(run(0, guided), first)


def test_greedy_sampling_matches_uncached_argmax():
    model = tiny_generator()
    vocab = model.vocab
    prefix = vocab.prefix([1, 2], (2, 2), 8)[None]
    codes = sample_codes(model, prefix, (2, 2, 2), SamplingConfig(temperature=0, cfg_scale=1.0))
    ids = vocab.sequence([1, 2], codes[0], 8)[None]
    with torch.no_grad():
        logits = model(ids, vocab.positions(2, 2, 2))
    predicted = logits[0, vocab.prefix_len - 1: -2].argmax(-1)
    assert torch.equal(predicted, codes.flatten())


def test_guidance_scale_zero_samples_the_null_caption():
    model = tiny_generator()
    greedy = dict(temperature=0)
    prefix, null_prefix = model.vocab.prefix([1, 2], (2, 2), 16)[None], model.vocab.prefix(None, (2, 2), 16)[None]
    scale_zero = sample_codes(model, prefix, (2, 2, 2), SamplingConfig(cfg_scale=0.0, **greedy))
    null = sample_codes(model, null_prefix, (2, 2, 2), SamplingConfig(cfg_scale=1.0, **greedy))
    assert torch.equal(scale_zero, null)


def test_bad_sampling_settings_are_refused():
    for bad in (dict(temperature=-1), dict(top_k=-1), dict(top_p=0), dict(cfg_scale=-2)):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)


# --- pipeline ---
def test_pipeline_generates_frames_and_is_seeded(pipeline):
    video = pipeline("a red circle moving left slowly", frames=6, sampling=SamplingConfig(cfg_scale=2.0), seed=3)
    assert video.shape == (1, 6, 16, 16, 3) and video.dtype == np.uint8
    again = pipeline("a red circle moving left slowly", frames=6, sampling=SamplingConfig(cfg_scale=2.0), seed=3)
    assert np.array_equal(video, again)


def test_pipeline_saved_and_loaded_gives_the_same_video(pipeline, tmp_path):
    pipeline.save_pretrained(tmp_path / "pipe")
    assert sorted(p.name for p in (tmp_path / "pipe").iterdir()) == ["generator", "pipeline.json",
                                                                      "text_tokenizer", "video_tokenizer"]
    loaded = TextToVideo.from_pretrained(tmp_path / "pipe")
    assert loaded.info == pipeline.info
    prompt = "a blue square moving up quickly"
    assert np.array_equal(loaded(prompt, seed=5), pipeline(prompt, seed=5))
    out = loaded.write(prompt, tmp_path / "out.gif", seed=5)
    assert out.is_file()


def test_pipeline_bad_input(pipeline, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        pipeline("  ")
    with pytest.raises(ValueError, match="divisible"):
        pipeline("a red circle moving left slowly", size=(20, 16))
    with pytest.raises(FileNotFoundError, match="not found"):
        TextToVideo.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a pipeline"):
        TextToVideo.from_pretrained(tmp_path / "empty")
    pipeline.save_pretrained(tmp_path / "pipe")
    info = json.loads((tmp_path / "pipe" / "pipeline.json").read_text())
    (tmp_path / "pipe" / "pipeline.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(ValueError, match="format 99"):
        TextToVideo.from_pretrained(tmp_path / "pipe")


def test_pipeline_refuses_parts_that_were_not_trained_together(text):
    with pytest.raises(ValueError, match="not trained together"):
        TextToVideo(tiny_model(), tiny_generator(text_size=text.size, codebook_size=32), text)


def test_rotary_split_follows_the_head_size_unless_set():
    config = GeneratorConfig(hidden=256, heads=4)
    assert config.rope_sections == [] and config.rotary_split == [16, 8, 8]
    wider = dataclasses.replace(config, hidden=512)  # a --set model.hidden=… override keeps a valid split
    assert wider.rotary_split == [32, 16, 16]
    assert GeneratorConfig(hidden=256, heads=4, rope_sections=[8, 12, 12]).rotary_split == [8, 12, 12]
    with pytest.raises(ValueError, match="head_dim/2 = 32"):
        GeneratorConfig(hidden=256, heads=4, rope_sections=[8, 8, 8])


def test_factorized_codes_follow_the_quantizers_digit_order_and_share_rows():
    from vector_quantize_pytorch import FSQ

    from t2v.generator.model import CodeDigits

    levels = [8, 5, 5, 5]
    digits = CodeDigits(levels, hidden=6)
    expected = FSQ(levels=levels).indices_to_level_indices(torch.arange(1000))  # (1000, 4)
    assert torch.equal(digits.rows - torch.tensor([0, 8, 13, 18]), expected)
    # codes 1 and 201 differ only in the last digit: their vectors differ by the difference of that digit's rows
    vectors = digits.vectors()
    table = digits.table.weight
    torch.testing.assert_close(vectors[201] - vectors[1], table[18 + 1] - table[18 + 0])
    torch.testing.assert_close(digits(torch.tensor([[1, 201]])), vectors[[1, 201]][None])


def test_factorized_codes_change_the_logits_survive_a_round_trip_and_must_match_the_codebook(tmp_path):
    from t2v.generator.model import VideoGenerator
    from t2v.generator.config import GeneratorConfig

    plain, factorized = tiny_generator(), tiny_generator(code_levels=[4, 4, 4])
    assert factorized.num_parameters() == plain.num_parameters() + 2 * 12 * plain.config.hidden
    vocab = plain.vocab
    ids = vocab.sequence([4, 5], torch.randint(0, 64, (2, 2, 2)), 8)[None]
    with torch.no_grad():
        assert not torch.allclose(plain(ids, vocab.positions(2, 2, 2)), factorized(ids, vocab.positions(2, 2, 2)))
        loaded = VideoGenerator.from_pretrained(factorized.save_pretrained(tmp_path / "g"))
        torch.testing.assert_close(loaded(ids, vocab.positions(2, 2, 2)), factorized(ids, vocab.positions(2, 2, 2)))
    with pytest.raises(ValueError, match="code_levels"):
        GeneratorConfig(codebook_size=64, code_levels=[8, 5])


def test_factorized_output_vectors_are_kept_while_sampling_and_rebuilt_after_a_weight_update():
    model = tiny_generator(code_levels=[4, 4, 4])
    with torch.no_grad():
        kept = model.output_weight()
        assert model.output_weight() is kept  # one sum for every decoded id
        torch.testing.assert_close(kept, model.head.weight + model.digits_out.vectors())
        model.digits_out.table.weight.add_(1.0)  # what an optimizer step does
        rebuilt = model.output_weight()
    assert rebuilt is not kept
    torch.testing.assert_close(rebuilt, model.head.weight + model.digits_out.vectors())
    assert model.output_weight().requires_grad  # training builds it with autograd, every time
