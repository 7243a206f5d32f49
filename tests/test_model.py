"""tokenizer/model.py + layers.py: latent shape arithmetic, chunked == whole encode/decode, causality,
save_pretrained → from_pretrained, presets."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import QUANTIZERS, initialise_codebook, random_video, tiny_config, tiny_model
from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.config import TOKENIZER_PRESETS, QuantizerConfig, TokenizerConfig, preset


# 1. Latent shape arithmetic -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spatial, temporal, frames, size, expected", [
    (8, 4, 17, (64, 64), (5, 8, 8)),
    (8, 4, 1, (32, 48), (1, 4, 6)),  # an image is a one-frame video
    (8, 4, 9, (16, 40), (3, 2, 5)),  # non-square
    (8, 2, 9, (24, 16), (5, 3, 2)),
    (8, 1, 6, (16, 16), (6, 2, 2)),  # temporal stride 1: every frame count fits
    (16, 4, 13, (32, 64), (4, 2, 4)),
    (16, 2, 3, (48, 16), (2, 3, 1)),
])
def test_latent_shape_arithmetic(spatial, temporal, frames, size, expected):
    channels = (8, 8, 16, 16) if spatial == 8 else (8, 8, 16, 16, 16)
    model = VideoTokenizer(tiny_config(channels=channels, spatial_stride=spatial, temporal_stride=temporal))
    assert model.latent_shape(frames, *size) == expected
    assert model.num_frames(expected[0]) == frames


@pytest.mark.parametrize("temporal", [1, 2, 4])
def test_latent_frames_formula(temporal):
    model = VideoTokenizer(tiny_config(temporal_stride=temporal))
    for k in range(5):
        frames = 1 + temporal * k
        assert model.latent_shape(frames, 16, 16) == (1 + k, 2, 2)
        assert model.num_frames(1 + k) == frames


@pytest.mark.parametrize("overrides, frames, size", [
    (dict(), 9, (16, 24)),  # stride 8 × 4, non-square
    (dict(), 1, (16, 16)),  # an image
    (dict(temporal_stride=2, channels=(8, 8, 16, 16, 16), spatial_stride=16), 5, (32, 16)),
    (dict(temporal_stride=1), 3, (16, 16)),
])
def test_encode_shape_matches_latent_shape_and_decode_length(overrides, frames, size):
    model = tiny_model(**overrides)
    video = random_video(batch=2, frames=frames, height=size[0], width=size[1])
    codes = model.encode(video)
    t, h, w = model.latent_shape(frames, *size)
    assert codes.shape == (2, t, h, w) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < model.codebook_size
    decoded = model.decode(codes)
    assert decoded.shape == (2, 3, model.num_frames(t), *size)
    assert decoded.shape[2] == frames
    assert decoded.abs().max() <= 1.0
    output = model(video)  # the training forward agrees on shapes too
    assert output.reconstruction.shape == video.shape and torch.equal(output.codes, codes)


def test_invalid_frame_count_names_valid_sizes():
    model = VideoTokenizer(tiny_config())
    with pytest.raises(ValueError, match=r"16 frames.*temporal stride 4.*13 or 17"):
        model.latent_shape(16, 32, 32)
    with pytest.raises(ValueError, match=r"13 or 17"):
        model.encode(random_video(frames=16))
    with pytest.raises(ValueError, match="frames"):
        model.latent_shape(0, 32, 32)


def test_invalid_size_names_valid_sizes():
    model = VideoTokenizer(tiny_config())
    with pytest.raises(ValueError, match=r"20x16.*spatial stride 8.*24x16"):
        model.latent_shape(9, 16, 20)  # (T, H, W): W = 20
    with pytest.raises(ValueError, match="24x16"):
        model.encode(random_video(frames=9, height=16, width=20))
    wide = VideoTokenizer(tiny_config(channels=(8, 8, 16, 16, 16), spatial_stride=16))
    with pytest.raises(ValueError, match=r"spatial stride 16.*32x32"):
        wide.latent_shape(1, 24, 24)


def test_config_checks_channel_count_and_strides():
    with pytest.raises(ValueError, match="5 widths"):
        TokenizerConfig(channels=(8, 8, 16, 16), spatial_stride=16)
    with pytest.raises(ValueError, match="spatial_stride"):
        TokenizerConfig(channels=(8, 8, 16, 16), spatial_stride=4)
    with pytest.raises(ValueError, match="temporal_stride"):
        TokenizerConfig(channels=(8, 8, 16, 16), temporal_stride=3)
    with pytest.raises(ValueError, match="fsq, lfq or vq"):
        QuantizerConfig(kind="rvq")
    with pytest.raises(ValueError, match="temporal stride 4 needs 2 downsampling levels"):
        TokenizerConfig(channels=(8, 16), patch_size=4)  # one level below the stem: time can halve only once


# 2. Chunked == whole, causality ---------------------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_chunked_encode_equals_whole(quantizer):
    video = random_video(batch=2, frames=17, seed=1)  # 5 latent frames
    model = initialise_codebook(tiny_model(quantizer), video)
    model.config.chunk_latent_frames = 100
    whole = model.encode(video)
    assert len(model.split_frames(video)) == 1
    model.config.chunk_latent_frames = 1
    assert [c.shape[2] for c in model.split_frames(video)] == [5, 4, 4, 4]
    chunked = model.encode(video)
    assert whole.shape == (2, 5, 2, 2)
    assert torch.equal(chunked, whole)
    assert torch.equal(torch.cat(list(model.encode_stream([video])), dim=1), whole)
    # irregular chunk sizes: 1, then 8, then 8 frames
    parts = [video[:, :, :1], video[:, :, 1:9], video[:, :, 9:]]
    assert torch.equal(torch.cat(list(model.encode_stream(parts)), dim=1), whole)
    assert whole.unique().numel() > 1  # a constant code would make the comparison vacuous


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_chunked_decode_equals_whole(quantizer):
    video = random_video(batch=2, frames=17, seed=2)
    model = initialise_codebook(tiny_model(quantizer), video)
    codes = model.encode(video)
    with torch.no_grad():
        whole = model.decoder(model.quantizer.codes_to_latent(codes)).clamp(-1, 1)
    for chunk in (1, 2, 3, 100):
        model.config.chunk_latent_frames = chunk
        decoded = model.decode(codes)
        assert decoded.shape == whole.shape == (2, 3, 17, 16, 16)
        torch.testing.assert_close(decoded, whole, atol=1e-5, rtol=0)
    # the decoder is causal too: the first k latent frames decode to the first num_frames(k) frames
    first = model.decode(codes[:, :2])
    torch.testing.assert_close(first, whole[:, :, : model.num_frames(2)], atol=1e-5, rtol=0)


@pytest.mark.parametrize("overrides", [dict(temporal_stride=2), dict(temporal_stride=1),
                                       dict(channels=(8, 8, 16, 16, 16), spatial_stride=16)])
def test_chunked_equals_whole_for_other_strides(overrides):
    model = tiny_model(**overrides)
    video = random_video(batch=1, frames=9, height=32, width=32, seed=7)
    model.config.chunk_latent_frames = 100
    whole = model.encode(video)
    decoded = model.decode(whole)
    model.config.chunk_latent_frames = 1
    assert torch.equal(model.encode(video), whole)
    torch.testing.assert_close(model.decode(whole), decoded, atol=1e-5, rtol=0)
    assert decoded.shape == video.shape


def test_encode_stream_rejects_bad_chunk_lengths():
    model = tiny_model()
    video = random_video(frames=9)
    with pytest.raises(ValueError, match=r"chunk 0 has 4 frames"):
        list(model.encode_stream([video[:, :, :4]]))
    with pytest.raises(ValueError, match=r"chunk 1 has 3 frames.*multiple of s"):
        list(model.encode_stream([video[:, :, :5], video[:, :, 5:8]]))


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_encoder_is_causal(quantizer):
    """Latent frame j depends only on frames ≤ 4j; in particular the first latent frame only on frame 0."""
    video = random_video(batch=1, frames=13, seed=3)  # latent frames: {0}, {1..4}, {5..8}, {9..12}
    model = initialise_codebook(tiny_model(quantizer), video)
    with torch.no_grad():
        latent = model.encoder(video)
    codes = model.encode(video)
    for j in range(3):
        changed = video.clone()
        changed[:, :, 4 * j + 1:] = random_video(batch=1, frames=12 - 4 * j, seed=10 + j)
        with torch.no_grad():
            latent_changed = model.encoder(changed)
        torch.testing.assert_close(latent_changed[:, :, : j + 1], latent[:, :, : j + 1], atol=1e-6, rtol=0)
        assert (latent_changed[:, :, j + 1] - latent[:, :, j + 1]).abs().max() > 1e-3  # the future does change
        assert torch.equal(model.encode(changed)[:, : j + 1], codes[:, : j + 1])
    # an image is a one-frame video: encoding frame 0 alone gives the first latent frame
    assert torch.equal(model.encode(video[:, :, :1]), codes[:, :1])


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_encode_does_not_change_a_fresh_model(quantizer):
    """Encoding is pure: no hidden state (e.g. a VQ k-means init on first use), so chunked == whole even fresh."""
    video = random_video(batch=2, frames=17, seed=4)
    model = tiny_model(quantizer)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    twin = tiny_model(quantizer)
    model.config.chunk_latent_frames = 1
    chunked = model.encode(video)
    twin.config.chunk_latent_frames = 100
    whole = twin.encode(video)
    after = model.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed == []
    assert torch.equal(chunked, whole)


# 3. Checkpoints and presets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_save_load_roundtrip_is_exact(quantizer, tmp_path):
    video = random_video(batch=2, frames=9, seed=5)
    model = initialise_codebook(tiny_model(quantizer), video)
    if quantizer == "vq":  # a second EMA update, so the buffers differ from any freshly built model's
        initialise_codebook(model, random_video(batch=2, frames=9, seed=6))
    codes = model.encode(video)
    decoded = model.decode(codes)
    model.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["quantizer"]["kind"] == quantizer

    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert not loaded.training
    assert loaded.config == model.config
    original_state, loaded_state = model.state_dict(), loaded.state_dict()
    assert original_state.keys() == loaded_state.keys()
    for name, tensor in original_state.items():
        assert torch.equal(loaded_state[name], tensor), name
    if quantizer == "vq":
        buffers = [name for name, _ in model.quantizer.named_buffers()]
        assert any("embed_avg" in name for name in buffers) and any("cluster_size" in name for name in buffers)
        assert any("embed_avg" in name for name in original_state)  # the EMA buffers are saved, compared above
        fresh = tiny_model("vq", seed=123).quantizer.state_dict()
        assert not torch.equal(fresh["quantizer._codebook.embed"], loaded.quantizer.state_dict()[
            "quantizer._codebook.embed"])
        assert bool(loaded.quantizer.state_dict()["quantizer._codebook.initted"])
    assert torch.equal(loaded.encode(video), codes)
    assert torch.equal(loaded.decode(codes), decoded)


def test_from_pretrained_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        VideoTokenizer.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        VideoTokenizer.from_pretrained(tmp_path / "empty")


def test_from_pretrained_rejects_damaged_or_mismatched_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_model().save_pretrained(tmp_path / "tok")
    weights = tmp_path / "tok" / "model.safetensors"
    state = load_file(str(weights))
    del state["decoder.conv_out.conv.bias"]
    save_file(state, str(weights))
    with pytest.raises(ValueError, match="does not match its config.json") as error:
        VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert "decoder.conv_out.conv.bias" in str(error.value) and "\n" not in str(error.value)

    # an FSQ checkpoint whose config.json claims VQ (same latent width): the codebook tensors are missing
    tiny_model("fsq", fsq_levels=(4, 4, 4, 4)).save_pretrained(tmp_path / "fsq")
    config = json.loads((tmp_path / "fsq" / "config.json").read_text())
    config["quantizer"].update(kind="vq", vq_dim=4)
    (tmp_path / "fsq" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config.json") as error:
        VideoTokenizer.from_pretrained(tmp_path / "fsq")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("saved, claimed", [(dict(channels=(8, 8, 16, 32)), dict(channels=[8, 8, 16, 16])),
                                            (dict(num_res_blocks=2), dict(num_res_blocks=1))])
def test_from_pretrained_rejects_weights_of_other_shapes(tmp_path, saved, claimed):
    tiny_model(**saved).save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    config.update(claimed)
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match") as error:
        VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert "\n" not in str(error.value)


def test_from_pretrained_rejects_foreign_config(tmp_path):
    tiny_model().save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "config.json").write_text(json.dumps({"hidden_size": 12}))
    with pytest.raises(ValueError, match="not a video tokenizer config"):
        VideoTokenizer.from_pretrained(tmp_path / "tok")


def test_presets():
    assert set(TOKENIZER_PRESETS) == {"tiny", "S", "B", "L"}
    config = preset("tiny", quantizer=QuantizerConfig(kind="lfq", lfq_bits=8))
    assert config.quantizer.kind == "lfq" and config.channels == TOKENIZER_PRESETS["tiny"].channels
    assert TOKENIZER_PRESETS["tiny"].quantizer.kind == "fsq"  # overrides copy, they never mutate the preset
    with pytest.raises(ValueError, match=r"'XL'.*tiny, S, B, L"):
        preset("XL")


def test_from_pretrained_reads_the_flat_quantizer_layout(tmp_path):
    """A config.json written before the quantizer had its own section loads to the same model."""
    model = tiny_model("vq")
    model.save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "config.json").read_text())
    section = config.pop("quantizer")
    config.update({("quantizer" if key == "kind" else key): value for key, value in section.items()})
    (tmp_path / "tok" / "config.json").write_text(json.dumps(config))
    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.config == model.config and loaded.config.quantizer.kind == "vq"
    video = random_video(frames=5)
    assert torch.equal(loaded.encode(video), model.encode(video))


@pytest.mark.parametrize("stride", [(1, 1), (1, 2), (2, 2)])
def test_single_frame_conv_equals_the_padded_clip_conv_and_caches_the_same(stride):
    """A first frame alone takes a 2D conv with the temporal taps summed: the same output (to rounding) and the
    same cache tail as the conv over the frame with its repeated padding."""
    from t2v.tokenizer.layers import CausalConv3d, ConvCache

    torch.manual_seed(0)
    conv = CausalConv3d(4, 6, stride=stride)
    frame, rest = torch.randn(2, 4, 1, 8, 8), torch.randn(2, 4, 4, 8, 8)
    padded = torch.cat([frame.expand(-1, -1, 3, -1, -1)], dim=2)
    assert torch.allclose(conv(frame), conv.conv(padded), atol=1e-5)
    fast, slow = ConvCache(), ConvCache()
    fast_out = torch.cat([conv(frame, fast), conv(rest, fast)], dim=2)
    slow_first = conv.conv(padded)
    slow.set(conv, padded[:, :, padded.shape[2] - (3 - stride[0]):])
    slow_out = torch.cat([slow_first, conv(rest, slow)], dim=2)
    assert torch.allclose(fast_out, slow_out, atol=1e-5) and torch.equal(fast.get(conv), slow.get(conv))
    assert torch.allclose(fast_out, conv(torch.cat([frame, rest], dim=2)), atol=1e-5)  # = the whole clip
