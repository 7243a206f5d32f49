"""Config dataclasses: YAML round trip, typed `--set` overrides, recipe lookup, numbered run directories."""
from __future__ import annotations

import pytest

from t2v.cli.runs import next_run_dir
from t2v.core import config_io
from t2v.recipes.registry import tokenizer_config
from t2v.tokenizer.config import TokenizerTrainConfig


def test_yaml_round_trip_keeps_every_value(tmp_path):
    config = tokenizer_config("shapes")
    path = tmp_path / "config.yaml"
    path.write_text(config_io.dump_yaml(config))
    loaded = config_io.load(TokenizerTrainConfig, path)
    assert loaded == config
    assert isinstance(loaded.model.quantizer.fsq_levels, tuple) and isinstance(loaded.data.size, tuple)
    assert tokenizer_config(str(path)) == config  # a YAML path works wherever a recipe name does


def test_overrides_are_typed_and_nested():
    config = config_io.apply_overrides(tokenizer_config("shapes"), [
        "steps=12", "image_steps=4", "decoder_steps=2", "optim.lr=3e-4", "optim.warmup_steps=5", "loss.l2_weight=2",
        "model.quantizer.fsq_levels=[5,5,5]", "channels_last=false", "data.index=elsewhere/index.jsonl"])
    assert config.steps == 12 and config.image_steps == 4 and config.decoder_steps == 2
    assert config.optim.lr == 3e-4 and config.optim.warmup_steps == 5
    assert config.loss.l2_weight == 2.0 and isinstance(config.loss.l2_weight, float)
    assert config.model.quantizer.fsq_levels == (5, 5, 5) and config.channels_last is False
    assert config.data.index == "elsewhere/index.jsonl"


@pytest.mark.parametrize("override, message", [
    ("steps=abc", "expected a number"),
    ("channels_last=3", "expected a boolean"),
    ("model.quantizer.fsq_levels=8", "expected a list"),
    ("model.nope=1", "unknown config key"),
    ("nope.steps=1", "not a section"),
    ("steps", "not of the form key=value"),
    ("model.spatial_stride=12", "spatial_stride must be 8 or 16"),  # checked by the dataclass itself
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        config_io.apply_overrides(tokenizer_config("shapes"), [override])


def test_unknown_keys_and_recipes_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 3\nbogus: 1\n")
    with pytest.raises(ValueError, match="unknown config key.*bogus"):
        config_io.load(TokenizerTrainConfig, path)
    with pytest.raises(ValueError, match="unknown recipe 'mars'.*shapes"):
        tokenizer_config("mars")
    with pytest.raises(ValueError, match="unknown variant"):
        tokenizer_config("shapes", "huge")
    with pytest.raises(FileNotFoundError):
        config_io.load(TokenizerTrainConfig, tmp_path / "missing.yaml")


def test_quick_variant_derives_from_default():
    default, quick = tokenizer_config("shapes"), tokenizer_config("shapes", "quick")
    assert quick.steps < default.steps and quick.model == default.model and quick.data == default.data


def test_run_directories_are_numbered_and_never_reused(tmp_path):
    assert next_run_dir(tmp_path, "shapes-tokenizer", create=False).name == "shapes-tokenizer-00001"
    first = next_run_dir(tmp_path, "shapes-tokenizer")
    second = next_run_dir(tmp_path, "shapes-tokenizer")
    (tmp_path / "shapes-tokenizer-00007").mkdir()
    third = next_run_dir(tmp_path, "shapes-tokenizer")
    assert [first.name, second.name, third.name] == ["shapes-tokenizer-00001", "shapes-tokenizer-00002",
                                                      "shapes-tokenizer-00008"]
    assert first.is_dir() and third.is_dir()
