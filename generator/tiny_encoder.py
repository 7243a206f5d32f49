"""Tiny randomly initialised text encoders on disk, for tests and for measuring the text-encoder path offline.

`save_tiny_encoder(directory, captions, TinyEncoderConfig(kind="t5" | "clip"))` writes a `transformers` T5 encoder
or CLIP text model of random weights with a byte-level BPE tokenizer (the `tokenizers` library) trained on
`captions`: its merges make whole words of the captions' vocabulary, and every other character still has its bytes,
so any script passes through. A directory `TextEncoder.load` reads (text_encoder.py). Nothing is downloaded.

    python -m t2v.generator.tiny_encoder DIR [--shards SHARDS] [--kind clip]

trains the tokenizer on the captions of the token shards SHARDS (every clip's, as training's caption tokenizer;
none: bytes only).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

SPECIALS = ("<pad>", "</s>", "<s>")  # pad 0, end 1, start 2 (T5 ends a caption with </s>; CLIP wraps it in both)


@dataclass
class TinyEncoderConfig:
    """A tiny encoder's sizes and kind; the tokenizer's vocabulary is the 256 bytes, the specials and merges."""

    kind: str = "t5"  # "t5" (T5EncoderModel) or "clip" (CLIPTextModel)
    width: int = 32
    layers: int = 2
    heads: int = 2
    intermediate: int = 64
    vocab_size: int = 512  # BPE target (fewer when the captions hold fewer merges)
    max_positions: int = 64  # CLIP's position table (T5's positions are relative)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("t5", "clip"):
            raise ValueError(f"kind must be 't5' or 'clip', got {self.kind!r}")


def byte_level_tokenizer(captions: Iterable[str], config: TinyEncoderConfig):
    """A `PreTrainedTokenizerFast`: byte-level BPE trained on `captions`, specials as the kind's own place them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(captions), trainer)
    template = "$A </s>" if config.kind == "t5" else "<s> $A </s>"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(token, tokenizer.token_to_id(token)) for token in SPECIALS[1:]])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=SPECIALS[0], eos_token=SPECIALS[1],
                                   bos_token=SPECIALS[2], model_max_length=config.max_positions)


def save_tiny_encoder(directory: str | Path, captions: Iterable[str] = (),
                      config: TinyEncoderConfig | None = None) -> Path:
    """Write a random tiny encoder of `config.kind` and its tokenizer (trained on `captions`) into `directory`."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    config = config or TinyEncoderConfig()
    tokenizer = byte_level_tokenizer(captions, config)
    pad, end, start = (tokenizer.convert_tokens_to_ids(token) for token in SPECIALS)
    if config.kind == "t5":
        model_config = T5Config(vocab_size=len(tokenizer), d_model=config.width, d_kv=config.width // config.heads,
                                d_ff=config.intermediate, num_layers=config.layers, num_heads=config.heads,
                                pad_token_id=pad, eos_token_id=end, decoder_start_token_id=pad)
    else:
        model_config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=config.width,
                                      intermediate_size=config.intermediate, num_hidden_layers=config.layers,
                                      num_attention_heads=config.heads, max_position_embeddings=config.max_positions,
                                      pad_token_id=pad, bos_token_id=start, eos_token_id=end)
    saved = torch.random.get_rng_state()
    torch.manual_seed(config.seed)
    model = (T5EncoderModel if config.kind == "t5" else CLIPTextModel)(model_config)
    torch.random.set_rng_state(saved)  # the caller's draws are untouched
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m t2v.generator.tiny_encoder", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="where to write the encoder and its tokenizer")
    parser.add_argument("--shards", type=Path, help="token shards whose captions train the tokenizer")
    parser.add_argument("--kind", choices=("t5", "clip"), default="t5")
    args = parser.parse_args(argv)
    captions = []
    if args.shards:  # the captions the caption tokenizer would train on: every clip's (or a fixed sample of 1M)
        from t2v.generator.train import train_captions
        from t2v.tokenizer.shards import ShardReader

        captions = train_captions(ShardReader.open(args.shards), None)
    path = save_tiny_encoder(args.directory, captions, TinyEncoderConfig(kind=args.kind))
    print(f"tiny {args.kind} text encoder in {path}: train with --set model.text_encoder={path}")


if __name__ == "__main__":
    main()
