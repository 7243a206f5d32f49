"""A frozen pretrained text encoder as the generator's caption reader (generator/text_encoder.py): tiny random T5 and
CLIP text encoders on disk, their states in the prefix's caption slots, the learned null caption, training, guided
sampling through the pipeline, its save/load round trip, and the one-line errors of an incomplete directory."""
from __future__ import annotations

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import CAPTIONS, tiny_generator, tiny_model, tiny_shards
from t2v.generator.config import GeneratorConfig, GeneratorDataConfig, GeneratorOptimConfig, GeneratorTrainConfig
from t2v.generator.data import TokenSequences
from t2v.generator.model import VideoGenerator
from t2v.generator.pipeline import PipelineInfo, TextToVideo
from t2v.generator.prompts import PromptChange
from t2v.generator.sample import Prefixes, SamplingConfig, cache_rows, sample_codes
from t2v.generator.text_encoder import TextEncoder, check_encoder_dir, with_encoder
from t2v.generator.tiny_encoder import TinyEncoderConfig, save_tiny_encoder
from t2v.generator.batches import collate, draw_micro_batch
from t2v.generator.train import sequence_loss, train
from t2v.generator.vocab import NULL

RED, BLUE = "a red circle moving left slowly", "a blue square moving up quickly"
KINDS = ("t5", "clip")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """A tiny random T5 encoder and CLIP text model (32 wide), their tokenizers trained on the shapes captions."""
    root = tmp_path_factory.mktemp("encoders")
    return {kind: save_tiny_encoder(root / kind, CAPTIONS, TinyEncoderConfig(kind=kind)) for kind in KINDS}


def encoder_generator(text, directory, seed: int = 0) -> VideoGenerator:
    """The conftest's tiny generator, reading the encoder in `directory` (64 codes: the tiny video tokenizer's)."""
    config = with_encoder(GeneratorConfig(text_encoder=str(directory)))
    return tiny_generator(text_size=text.size, codebook_size=64, seed=seed, text_encoder=config.text_encoder,
                          text_encoder_width=config.text_encoder_width)


def test_a_tiny_encoder_gives_frozen_states_for_the_caption_slots(encoders):
    for kind, directory in encoders.items():
        encoder = TextEncoder.load(directory, max_len=10)
        assert encoder.width == 32 and not encoder.model.training
        assert not any(p.requires_grad for p in encoder.model.parameters())
        states, mask = encoder.encode([RED, None, BLUE])
        assert states.shape == (3, 10, 32) and mask.shape == (3, 10) and torch.isfinite(states).all()
        ends = 1 if kind == "t5" else 2  # T5 ends a caption with </s>; CLIP wraps it in <s> … </s>
        assert mask[1].sum() == ends  # the null caption reads as the empty one: its end token(s) only
        assert 2 + ends <= mask[0].sum() <= 10 and mask[0, 0] and not mask[0, -1]  # padded after the tokens
        assert (states[0] - states[2]).abs().max() > 1e-3  # two captions, two sets of states
        resolved = with_encoder(GeneratorConfig(text_encoder=str(directory)))
        assert resolved.text_encoder_width == 32 and resolved.text_encoder == str(directory.resolve())


def test_non_latin_prompts_pass_through_the_encoder_but_not_the_caption_tokenizer(encoders, text):
    encoder = TextEncoder.load(encoders["t5"], max_len=10)
    cube, blue = "куб", "青い"  # bytes of its byte-level BPE: 7 tokens each, then </s>
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from the encoder's tokenizer: nothing is dropped or unknown
        states, mask = encoder.encode([cube, blue])
    assert mask.sum(dim=1).tolist() == [8, 8] and (states[0] - states[1]).abs().max() > 1e-3
    with pytest.warns(UserWarning, match="truncated to the first 10"):
        ids, mask = encoder.tokens(["青い四角"], warn=True)
    assert mask.all() and ids[0, -1] == encoder.tokens.tokenizer.eos_token_id  # the end token kept
    with pytest.warns(UserWarning, match="cannot represent"):  # the caption tokenizer (the default) drops them
        text.encode(cube)


def test_an_incomplete_encoder_directory_is_a_one_line_error(encoders, tmp_path):
    def broken(name: str, *drop: str):
        directory = shutil.copytree(encoders["t5"], tmp_path / name)
        for file in drop:
            (directory / file).unlink()
        return directory

    cases = [(tmp_path / "absent", FileNotFoundError, "text encoder directory not found"),
             (broken("no_config", "config.json"), FileNotFoundError, "no config.json"),
             (broken("no_weights", "model.safetensors"), FileNotFoundError,
              "holds no text encoder weights \\(expected model.safetensors or pytorch_model.bin\\)"),
             (broken("no_tokenizer", "tokenizer.json"), FileNotFoundError, "holds no tokenizer")]
    bert = broken("bert")
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cases.append((bert, ValueError, "model_type 'bert' is not a T5 encoder or a CLIP text model"))
    for directory, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            TextEncoder.load(directory, 10)
        assert "\n" not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="holds no text encoder weights"):  # training checks it up front
        with_encoder(GeneratorConfig(text_encoder=str(tmp_path / "no_weights")))
    with pytest.raises(ValueError, match="text_encoder_width is unknown"):
        tiny_generator(text_encoder=str(encoders["t5"]))
    assert check_encoder_dir(encoders["clip"]) == encoders["clip"]


def test_the_generator_reads_projected_states_and_a_learned_null_caption(encoders, text):
    model = encoder_generator(text, encoders["t5"])
    vocab = model.vocab
    encoder = TextEncoder.load(encoders["t5"], vocab.max_text_len)
    states, mask = encoder.encode([RED, BLUE, RED])
    codes = torch.randint(0, 64, (2, 2, 2), generator=torch.Generator().manual_seed(0))
    ids = torch.stack([vocab.sequence([], codes, 8), vocab.sequence([], codes, 8), vocab.sequence(None, codes, 8)])
    positions = vocab.positions(2, 2, 2)
    with torch.no_grad():
        logits = model(ids, positions, text=states, text_mask=mask)
        null_alone = model(ids[2:], positions)  # a null row needs no states: the learned null caption
        other = model(ids[2:], positions, text=states[1:2], text_mask=mask[1:2])
    assert (logits[0] - logits[1]).abs().max() > 1e-4 and (logits[0] - logits[2]).abs().max() > 1e-4
    torch.testing.assert_close(null_alone[0], logits[2])
    torch.testing.assert_close(other[0], logits[2])  # whatever states a null row is given
    with pytest.raises(ValueError, match="reads a text encoder's states"):
        model(ids[:1], positions)
    names = set(model.state_dict())
    assert {"text_in.weight", "text_in.bias", "null_text"} <= names
    assert not any(name.startswith(("encoder", "shared")) for name in names)  # the encoder is not the model's


def test_cached_greedy_sampling_with_states_equals_the_uncached_argmax(encoders, text):
    model = encoder_generator(text, encoders["clip"])
    vocab = model.vocab
    states, mask = TextEncoder.load(encoders["clip"], vocab.max_text_len).encode([RED])
    prefix = Prefixes(vocab.prefix([], (2, 2), 8)[None], states, mask)
    codes = sample_codes(model, prefix, (2, 2, 2), SamplingConfig(temperature=0, cfg_scale=1.0))
    with torch.no_grad():
        logits = model(vocab.sequence([], codes[0], 8)[None], vocab.positions(2, 2, 2), text=states, text_mask=mask)
    assert torch.equal(logits[0, vocab.prefix_len - 1: -2].argmax(-1), codes.flatten())
    rows = cache_rows(prefix, vocab, SamplingConfig(cfg_scale=3.0))  # guidance: the null half, its states unread
    with torch.no_grad():
        both = model(rows.ids, vocab.prefix_positions(), text=rows.text, text_mask=rows.text_mask)
    assert rows.ids[1, 1] == NULL and (both[0] - both[1]).abs().max() > 1e-4  # NULL; cond and uncond differ


@pytest.mark.parametrize("kind, decoding, fall", [("t5", "token", 0.8), ("clip", "masked", 0.97)])
def test_a_few_steps_through_the_encoder_lower_the_loss(encoders, text, tmp_path, kind, decoding, fall):
    """Plain AdamW on micro-batches drawn as training draws them: the encoder frozen, its states on the fly (a
    "masked" generator's loss, on a share of each frame's codes, falls more slowly: 4.16 to 3.89 in 12 steps)."""
    shards = tiny_shards(tmp_path / "shards", clips=24)
    model = encoder_generator(text, encoders[kind])
    config = dataclasses.replace(model.config, sizes=[[4, 4]], rates=[8.0], max_text_len=10, decoding=decoding)
    torch.manual_seed(0)
    model = VideoGenerator(config).train()
    encoder = TextEncoder.load(encoders[kind], config.max_text_len)
    frozen = {name: p.clone() for name, p in encoder.model.named_parameters()}
    data = TokenSequences(shards, text, config.vocab, caption_dropout=0.2, encoder_tokens=encoder.tokens,
                          decoding=decoding)
    item = data[0]
    assert item["ids"][2: 1 + config.max_text_len].eq(0).all() and item["text_ids"].shape == (10,)
    train_config = GeneratorTrainConfig(batch_size=8, grad_accum=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(12):
        batch = draw_micro_batch(data, train_config, 0, step, 0)
        loss = sequence_loss(model, batch, torch.device("cpu"), encoder)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < fall * sum(losses[:3]) / 3, losses
    assert model.text_in.weight.grad.abs().sum() > 0 and model.null_text.grad.abs().sum() > 0
    assert all(torch.equal(p, frozen[name]) for name, p in encoder.model.named_parameters())
    assert collate([data[0], data[1]])["text_mask"].dtype == torch.bool
    states, mask = encoder.encode([RED])
    prefix = Prefixes(config.vocab.prefix([], (4, 4), 8)[None], states, mask)
    codes = sample_codes(model.eval(), prefix, (2, 4, 4), SamplingConfig(), torch.Generator().manual_seed(0))
    assert codes.shape == (1, 2, 4, 4) and 0 <= codes.min() and codes.max() < 64


def test_training_run_records_the_encoder_and_saves_none_of_its_weights(encoders, tmp_path):
    shards = tiny_shards(tmp_path / "shards", clips=48)
    video_tokenizer = tiny_model().save_pretrained(tmp_path / "tokenizer")
    config = GeneratorTrainConfig(
        name="test", model=GeneratorConfig(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128,
                                           text_encoder=str(encoders["t5"])),
        data=GeneratorDataConfig(shards=str(shards), train_split="seen", caption_dropout=0.1, text_vocab_size=64,
                                 max_text_len=10, num_workers=1),
        optim=GeneratorOptimConfig(lr=5e-3, warmup_steps=2), steps=8, batch_size=8, log_every=1,
        checkpoint_every=8, tokenizer_dir=str(video_tokenizer), sample_every=8, sample_prompts=[RED])
    run_dir = tmp_path / "run"
    train(config, run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    recorded = json.loads((run_dir / "config.json").read_text())["model"]
    assert recorded["text_encoder"] == str(encoders["t5"].resolve()) and recorded["text_encoder_width"] == 32
    weights = load_file(run_dir / "model.safetensors")
    assert "text_in.weight" in weights and not any(name.startswith(("encoder", "shared")) for name in weights)
    assert (run_dir / "samples" / "step_00000008" / "00_a_red_circle_moving_left_slowly.mp4").stat().st_size > 0
    assert VideoGenerator.from_pretrained(run_dir).config.text_encoder_width == 32


def test_guided_pipeline_samples_and_survives_a_round_trip_without_the_original_encoder(encoders, text, tmp_path):
    original = shutil.copytree(encoders["t5"], tmp_path / "t5")
    generator = encoder_generator(text, original)
    pipeline = TextToVideo(tiny_model(), generator, text, PipelineInfo(fps=8, size=(16, 16), frames=5))
    assert pipeline.text_encoder is not None and pipeline.text_encoder.directory == original.resolve()
    guided = SamplingConfig(temperature=0, cfg_scale=3.0)
    red = pipeline(RED, sampling=guided)
    assert red.shape == (1, 5, 16, 16, 3)
    assert not (red == pipeline(BLUE, sampling=guided)).all()
    assert not (red == pipeline(RED, sampling=SamplingConfig(temperature=0, cfg_scale=1.0))).all()
    long_red = pipeline(RED, frames=9, sampling=guided)  # 3 latent frames in a window of 2: it rolls
    story = np.concatenate(list(pipeline.generate([PromptChange(0, RED), PromptChange(4, BLUE)], frames=9,
                                                  sampling=guided)), axis=1)  # the prompt changes: prefilled again
    assert story.shape == long_red.shape == (1, 9, 16, 16, 3)
    assert (story[:, :1] == long_red[:, :1]).all() and not (story == long_red).all()
    saved = pipeline.save_pretrained(tmp_path / "pipeline")
    assert {p.name for p in (saved / "text_encoder").iterdir()} >= {"config.json", "model.safetensors",
                                                                     "tokenizer.json"}
    shutil.rmtree(original)  # the pipeline is self-contained: it loads its own copy
    loaded = TextToVideo.from_pretrained(saved)
    assert loaded.generator.config.text_encoder == str((saved / "text_encoder").resolve())
    assert (loaded(RED, sampling=guided) == red).all()
    with pytest.raises(ValueError, match="not trained together"):
        TextToVideo(tiny_model(), encoder_generator(text, saved / "text_encoder"), text,
                    text_encoder=TextEncoder.load(encoders["clip"], 4))
    with pytest.raises(ValueError, match="reads the caption tokenizer's pieces"):
        TextToVideo(tiny_model(), tiny_generator(text_size=text.size), text,
                    text_encoder=TextEncoder.load(encoders["clip"], 10))


def test_the_command_makes_a_tiny_encoder_whose_tokenizer_knows_the_shard_captions(tmp_path, capsys):
    from t2v.generator.tiny_encoder import main

    shards = tiny_shards(tmp_path / "shards", clips=24)
    main([str(tmp_path / "clip"), "--shards", str(shards), "--kind", "clip"])
    assert "--set model.text_encoder=" in capsys.readouterr().out
    encoder = TextEncoder.load(tmp_path / "clip", max_len=10)
    assert encoder.model.config.model_type == "clip_text_model" and encoder.width == 32
    words = encoder.tokens.tokenizer(RED, add_special_tokens=False)["input_ids"]
    assert len(words) == len(RED.split())  # merges made whole words of the captions' vocabulary
