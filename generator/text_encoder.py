"""A frozen pretrained text encoder: the option beside the caption tokenizer (text.py, the default).

A directory the user points at (`GeneratorConfig.text_encoder`) holds a `transformers` T5 encoder (`T5EncoderModel`;
a whole T5's directory loads its encoder) or CLIP text model (`CLIPTextModel`; a whole CLIP's loads its text tower)
with its tokenizer; the kind is read from its config.json, nothing is downloaded (`local_files_only`). A caption's
tokens fill the prefix's `max_text_len` caption slots (padded, truncated with its end token kept); the encoder's
last hidden states of them, projected by the generator to its width (`VideoGenerator.text_in`), replace the caption
embeddings there, and padding slots keep the PAD embedding, as the caption prefix pads now. The null caption (caption
dropout, the unconditional half of guidance) is the generator's learned `null_text`, marked as now by NULL in the
prefix ids.

The encoder is frozen and kept out of the generator: it runs in eval mode without autograd, once per prompt when
sampling and once per micro-batch when training (on the fly, in the step: nothing precomputed, nothing stored); its
weights are not in the generator's checkpoint, whose config records the directory; a pipeline saves its own copy
(`TextEncoder.save`). Its tokenizer reads any script its vocabulary covers (a byte-level one, every character):
captions are only stripped and their spaces collapsed, never lower-cased or filtered.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from t2v.generator.config import GeneratorConfig
from t2v.generator.model import read_json

# config.json's model_type → the kind of encoder ("clip": a whole CLIP model, whose text tower is loaded)
KINDS = {"t5": "t5", "clip_text_model": "clip", "clip": "clip"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.json")  # a fast tokenizer, T5's sentencepiece, CLIP's BPE
_SAVE = "save the model and its tokenizer there with `save_pretrained`, or make a tiny one with " \
        "`python -m t2v.generator.tiny_encoder DIR`"


def check_encoder_dir(directory: str | Path) -> Path:
    """`directory` if it holds a T5 encoder or CLIP text model with weights and a tokenizer; else a one-line
    FileNotFoundError (or ValueError for another model) naming what is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"text encoder directory not found: {directory} (model.text_encoder: a T5 encoder or "
                                f"CLIP text model on disk; {_SAVE})")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} holds no text encoder: no config.json; {_SAVE}")
    encoder_kind(directory)
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(f"{directory} holds no text encoder weights (expected {' or '.join(WEIGHT_FILES[::2])})"
                                f"; {_SAVE}")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"{directory} holds no tokenizer (expected {', '.join(TOKENIZER_FILES)}): save the "
                                f"encoder's tokenizer there with `tokenizer.save_pretrained`")
    return directory


def encoder_kind(directory: str | Path) -> str:
    """"t5" or "clip", from the model_type of the directory's config.json."""
    path = Path(directory) / "config.json"
    model_type = read_json(path, _SAVE).get("model_type")
    if model_type not in KINDS:
        raise ValueError(f"{path}: model_type {model_type!r} is not a T5 encoder or a CLIP text model (t2v reads "
                         f"model_type {', '.join(KINDS)})")
    return KINDS[model_type]


def encoder_config(directory: str | Path) -> Any:
    """The `transformers` config of the encoder in `directory` (a T5Config or CLIPTextConfig)."""
    from transformers import CLIPTextConfig, T5Config

    kind = encoder_kind(directory)
    return (T5Config if kind == "t5" else CLIPTextConfig).from_pretrained(directory, local_files_only=True)


def with_encoder(config: GeneratorConfig) -> GeneratorConfig:
    """`config` with its text encoder's directory made absolute and its width read from it (as training records
    them); unchanged without an encoder."""
    if not config.text_encoder:
        return config
    directory = check_encoder_dir(config.text_encoder).resolve()
    return dataclasses.replace(config, text_encoder=str(directory),
                               text_encoder_width=int(encoder_config(directory).hidden_size))


def clean(caption: str) -> str:
    """A caption as the encoder reads it: stripped, its runs of white space one space (case and script kept)."""
    return " ".join(caption.split())


@dataclass
class EncoderTokenizer:
    """The encoder's tokenizer over the prefix's `max_len` caption slots: light enough for data workers."""

    tokenizer: Any  # a `transformers` tokenizer
    max_len: int

    def __call__(self, captions: Sequence[str | None], warn: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (B, max_len) and mask (B, max_len; True on tokens) of the captions, padded, truncated (the end
        token kept). None (the null caption) reads as the empty caption: finite states the generator replaces by its
        null embedding. With `warn` (prompts), an empty prompt is a ValueError, and truncation and characters the
        tokenizer reads as unknown are warnings."""
        texts = ["" if caption is None else clean(caption) for caption in captions]
        if warn:
            for caption, text in zip(captions, texts):
                if caption is not None:
                    self.check(text)
        tokens = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_len,
                                return_tensors="pt")
        return tokens["input_ids"], tokens["attention_mask"].bool()

    def check(self, text: str) -> None:
        """The warnings (and the error for an empty prompt) of one prompt."""
        if not text:
            raise ValueError("the prompt is empty: give a caption such as \"a red circle moving left slowly\"")
        length = len(self.tokenizer(text)["input_ids"])
        if length > self.max_len:
            warnings.warn(f"prompt is {length} text encoder tokens long; truncated to the first {self.max_len}",
                          stacklevel=4)
        unknown = self.tokenizer.unk_token_id
        if unknown is not None:
            foreign = [char for char in dict.fromkeys(text) if not char.isspace()
                       and unknown in self.tokenizer(char, add_special_tokens=False)["input_ids"]]
            if foreign:
                warnings.warn(f"characters the text encoder's tokenizer reads as unknown: "
                              f"{', '.join(map(repr, foreign[:10]))}", stacklevel=4)


class TextEncoder:
    """A frozen T5 encoder or CLIP text model and its tokenizer (`tokens`): captions → last hidden states."""

    def __init__(self, model: torch.nn.Module, tokens: EncoderTokenizer, directory: Path) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokens = tokens
        self.directory = directory  # where it was loaded from

    @classmethod
    def load(cls, directory: str | Path, max_len: int) -> "TextEncoder":
        """The encoder and tokenizer saved in `directory`, for prefixes of `max_len` caption slots; a directory
        without them is a one-line error naming what is missing."""
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        directory = check_encoder_dir(directory)
        kind = encoder_kind(directory)
        model = (T5EncoderModel if kind == "t5" else CLIPTextModel).from_pretrained(directory, local_files_only=True)
        positions = getattr(model.config, "max_position_embeddings", None)
        if kind == "clip" and positions < max_len:
            raise ValueError(f"{directory}: the CLIP text model reads at most {positions} tokens, the generator's "
                             f"prefix has {max_len} caption slots: lower max_text_len to {positions}")
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        if tokenizer.pad_token_id is None:  # CLIP's own tokenizers pad with their end token
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, EncoderTokenizer(tokenizer, max_len), directory)

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "TextEncoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last hidden states (B, L, width) of token ids and mask (B, L), on the encoder's device; no autograd
        (not inference mode: training feeds them to the generator's projection, which autograd records)."""
        device = self.device
        return self.model(input_ids=ids.to(device), attention_mask=mask.to(device).long()).last_hidden_state

    def encode(self, captions: Sequence[str | None], warn: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """States (B, max_len, width) and mask (B, max_len) of prompts (None: the null caption), each once."""
        ids, mask = self.tokens(captions, warn=warn)
        return self.states(ids, mask), mask.to(self.device)

    def save(self, directory: str | Path) -> Path:
        """Write the encoder and its tokenizer into `directory` (`save_pretrained`: a T5 saves its encoder only)."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokens.tokenizer.save_pretrained(directory)
        return directory
