"""The caption tokenizer: a sentencepiece model trained on the dataset's captions.

Saved as `text.model` (the sentencepiece proto) and `text.json` (max length, piece count (a truncated proto still
parses: the count finds it) and the words seen in training, so a
prompt with words the model never saw gets a warning that names them; so do characters the model reads as unknown,
such as other scripts or emoji). Prompts are NFKC-normalized, lower-cased and stripped; an empty prompt is an error,
an over-long one is truncated with a warning. A damaged `text.model` or `text.json` is a one-line ValueError.
"""
from __future__ import annotations

import io
import json
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from t2v.core.atomic import atomic_write_text, atomic_file

MODEL_FILE = "text.model"
INFO_FILE = "text.json"
_REPAIR = "copy the directory again, or re-run `t2v generator train` to write it"


def normalize(prompt: str) -> str:
    """NFKC (as sentencepiece reads it: full-width letters become plain ones), lower-case, single spaces, no
    surrounding blanks."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", prompt).strip().lower())


def words_of(text: str) -> list[str]:
    """The words of normalized `text`: runs of letters, digits (of any script) and apostrophes."""
    return re.findall(r"(?:[^\W_]|')+", text)


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
        atomic_write_text(directory / INFO_FILE, json.dumps({"max_len": self.max_len, "size": self.size,
                                                             "words": sorted(self.words)}))

    @classmethod
    def load(cls, directory: str | Path) -> "TextTokenizer":
        """Read `text.model` and `text.json` from `directory`; a damaged or incomplete file is a one-line
        ValueError naming it."""
        directory = Path(directory)
        model_path, info_path = directory / MODEL_FILE, directory / INFO_FILE
        if not model_path.is_file() or not info_path.is_file():
            raise FileNotFoundError(f"no text tokenizer in {directory} (expected {MODEL_FILE} and {INFO_FILE})")
        try:
            processor = spm.SentencePieceProcessor(model_proto=model_path.read_bytes())
        except RuntimeError:  # sentencepiece's parse failure
            processor = None
        if processor is None or processor.get_piece_size() == 0:
            raise ValueError(f"{model_path}: not a sentencepiece model: the file is truncated or damaged; {_REPAIR}")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{info_path}: not valid JSON: the file is damaged; {_REPAIR}") from None
        if not isinstance(info, dict) or not isinstance(info.get("max_len"), int) \
                or not isinstance(info.get("words"), list):
            raise ValueError(f"{info_path}: expected an object with \"max_len\" (a number) and \"words\" (a list): "
                             f"the file is incomplete or damaged; {_REPAIR}")
        if info.get("size", processor.get_piece_size()) != processor.get_piece_size():  # older saves lack it
            raise ValueError(f"{model_path}: holds {processor.get_piece_size()} pieces, {INFO_FILE} records "
                             f"{info['size']}: the file is truncated or damaged; {_REPAIR}")
        return cls(processor, info["max_len"], info["words"])

    def encode(self, prompt: str, warn: bool = True) -> list[int]:
        """Pieces of `prompt`. Empty → ValueError; unknown words or truncation → a warning (when `warn`)."""
        text = normalize(prompt)
        if not text:
            raise ValueError("the prompt is empty: give a caption such as \"a red circle moving left slowly\"")
        foreign = self.unrepresentable(text) if warn else []
        if foreign:
            shown = ", ".join(map(repr, foreign[:10])) + (f" … ({len(foreign)} in all)" if len(foreign) > 10 else "")
            warnings.warn(f"characters the text model cannot represent (read as unknown or dropped): {shown}; "
                          "write the prompt in the letters of the training captions", stacklevel=2)
        if warn and self.words:
            unknown = [w for w in words_of(text) if w not in self.words and not set(w) & set(foreign)]
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

    def unrepresentable(self, text: str) -> list[str]:
        """The characters of `text` (each once, in order) that the model reads as unknown, or whose pieces hold
        nothing but the word boundary (sentencepiece's normalization dropped them)."""
        unknown, boundary = self.processor.unk_id(), self.processor.piece_to_id("\u2581")
        foreign = []
        for char in dict.fromkeys(text):
            pieces = [] if char.isspace() else self.processor.encode(char)
            if not char.isspace() and (unknown in pieces or all(piece == boundary for piece in pieces)):
                foreign.append(char)
        return foreign

    def decode(self, pieces: list[int]) -> str:
        return self.processor.decode(pieces)
