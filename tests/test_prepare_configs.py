"""The real-footage recipes' typed configs: every recipe resolves through the registry, at GPU sizes."""
from __future__ import annotations

import pytest

from t2v.core import config_io
from t2v.recipes.registry import RECIPES, generator_config, tokenizer_config
from t2v.tokenizer.config import TokenizerTrainConfig

FOOTAGE = ("ucf101", "msrvtt", "webvid", "kinetics", "folder")


@pytest.mark.parametrize("name", FOOTAGE)
def test_footage_tokenizer_configs(name, tmp_path):
    assert name in RECIPES
    config = tokenizer_config(name)
    assert config.name == name and config.data.index == f"data/{name}/index.jsonl"
    assert config.data.num_frames == 17 and config.data.size == (128, 128) and config.data.fps == 8.0
    assert config.model.channels == (128, 128, 256, 512) and config.loss.perceptual_weight > 0
    assert config.data.train_split == "train" and config.steps >= 50_000
    quick = tokenizer_config(name, "quick")
    assert quick.steps == 2_000 and quick.image_steps < quick.loss.discriminator_start < quick.steps
    path = tmp_path / "config.yaml"
    path.write_text(config_io.dump_yaml(config))
    assert config_io.load(TokenizerTrainConfig, path) == config
    with pytest.raises(ValueError, match=f"unknown variant 'huge' of recipe {name}"):
        tokenizer_config(name, "huge")


@pytest.mark.parametrize("name", FOOTAGE)
def test_footage_generator_configs(name):
    config = generator_config(name)
    assert config.name == name and config.data.shards == f"data/{name}-tokens"
    assert (config.model.layers, config.model.hidden) == (12, 768) and config.precision == "bf16"
    assert config.batch_size * config.grad_accum * 8 == 256 and config.zero_stage == 1
    assert config.model.max_text_len == config.data.max_text_len
    assert generator_config(name, "quick").steps == 2_000
    with pytest.raises(ValueError, match="unknown variant"):
        generator_config(name, "huge")


def test_eval_splits_match_the_prepared_split_names():
    assert tokenizer_config("ucf101").data.eval_split == "test"
    assert {tokenizer_config(name).data.eval_split for name in ("msrvtt", "webvid", "kinetics")} == {"val"}
    assert tokenizer_config("folder").data.eval_split is None
