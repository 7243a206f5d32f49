"""The caption tokenizer: a sentencepiece model trained on the dataset's captions.

Saved as `text.model` (the sentencepiece proto) and `text.json` (max length and the words seen in training, so a
prompt with words the model never saw gets a warning that names them). Prompts are lower-cased and stripped;
an empty prompt is an error, an over-long one is truncated with a warning.
"""
from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from t2v.tokenizer.atomic import atomic_write_text, atomic_file

MODEL_FILE = "text.model"
INFO_FILE = "text.json"


def normalize(prompt: str) -> str:
    """Lower-case, single spaces, no surrounding blanks."""
    return re.sub(r"\s+", " ", prompt.strip().lower())


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text)


class TextTokenizer:
    """Encode prompts to sentencepiece pieces (ids 0 … size-1), truncated to `max_len`."""

    def __init__(self, processor: spm.SentencePieceProcessor, max_len: int, words: Iterable[str]) -> None:
        self.processor = processor
        self.max_len = max_len
        self.words = frozenset(words)

    @property
    def size(self) -> int:
        return self.processor.get_piece_size()

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int, max_len: int) -> "TextTokenizer":
        """Train a BPE model on `captions` (BPE merges whole words of a small caption set, where unigram keeps
        characters); the vocabulary shrinks below `vocab_size` if the text is small."""
        captions = [normalize(c) for c in captions if normalize(c)]
        if not captions:
            raise ValueError("cannot train a text tokenizer: no non-empty captions")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(captions), model_writer=model, vocab_size=vocab_size, model_type="bpe",
            hard_vocab_limit=False, character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
            minloglevel=2)
        processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
        return cls(processor, max_len, {w for c in captions for w in words_of(c)})

    def save(self, directory: str | Path) -> None:
        """Write `text.model` and `text.json` into `directory` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_file(directory / MODEL_FILE) as tmp:
            Path(tmp).write_bytes(self.processor.serialized_model_proto())
        atomic_write_text(directory / INFO_FILE, json.dumps({"max_len": self.max_len, "words": sorted(self.words)}))

    @classmethod
    def load(cls, directory: str | Path) -> "TextTokenizer":
        directory = Path(directory)
        if not (directory / MODEL_FILE).is_file() or not (directory / INFO_FILE).is_file():
            raise FileNotFoundError(f"no text tokenizer in {directory} (expected {MODEL_FILE} and {INFO_FILE})")
        processor = spm.SentencePieceProcessor(model_proto=(directory / MODEL_FILE).read_bytes())
        info = json.loads((directory / INFO_FILE).read_text())
        return cls(processor, int(info["max_len"]), info["words"])

    def encode(self, prompt: str, warn: bool = True) -> list[int]:
        """Pieces of `prompt`. Empty → ValueError; unknown words or truncation → a warning (when `warn`)."""
        text = normalize(prompt)
        if not text:
            raise ValueError("the prompt is empty: give a caption such as \"a red circle moving left slowly\"")
        if warn and self.words:
            unknown = [w for w in words_of(text) if w not in self.words]
            if unknown:
                warnings.warn(f"words the text model never saw in training: {', '.join(unknown)} "
                              "(the generator cannot know what they mean)", stacklevel=2)
        pieces = self.processor.encode(text)
        if len(pieces) > self.max_len:
            if warn:
                warnings.warn(f"prompt is {len(pieces)} text tokens long; truncated to the first {self.max_len}",
                              stacklevel=2)
            pieces = pieces[: self.max_len]
        return pieces

    def decode(self, pieces: list[int]) -> str:
        return self.processor.decode(pieces)
