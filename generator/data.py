"""Training sequences for the generator, read from token shards (memory-mapped).

Each item is `[BOS][caption][PAD…][SIZE][FPS][BOV][video ids…][EOV]` (layout in `vocab.py`; the size id names the
clip's latent grid, the fps id its frame rate) with its 3D positions and
labels shifted by one: `labels[j]` is the code of the id at `j + 1` when that id is a video id, else -100, so the
loss is on video ids only. With probability `caption_dropout` the caption is replaced by the null caption
(classifier-free guidance). The draw depends only on (seed, epoch, index): a resumed run sees the same data.

For videos of any length: with `window` W, an item is W latent frames cut from its clip at a random offset (the
first may be any frame of the clip), so the model learns to continue, not only to start; a window that starts at
the clip's first latent frame sits at slots 0 … W-1, any other at 1 … W (`vocab.first_slot`: the first latent
frame is coded from one frame, the others from several, and the position tells the model which it is);
with `context_noise` p, each video id of the input (not of the labels) is replaced by a random code with
probability p, so the model learns to go on from its own imperfect frames. `weights` gives each clip's share of
the draws: (its number of windows) ** `window_weight`, so 0 draws every clip alike and 1 every window alike (a
long clip, which holds many windows and the motion that only long clips show, bounces, is drawn more often).

A generator that predicts several codes of a frame per pass (`decoding` "frame" or "masked", generator/attention.py)
learns from `[prefix][clean frames][query frames]` (`query_sequence`): each latent frame again, at its own
positions, with some of its codes (all of them for "frame"; for "masked" a share drawn per frame on MaskGIT's cosine
schedule, at least one) hidden: read as MASK, or (`query_input` "previous") as the code at that place one latent
frame earlier, flagged as a guess; the loss is on those, each predicted at its own index (labels not shifted), and
the items carry each id's latent frame, query and guess flags, from which the trainer builds the mask.

With a text encoder (`encoder_tokens`, text_encoder.py) the prefix's caption slots hold PAD (NULL first for a
dropped caption) and the item carries the caption's encoder tokens, `text_ids` and `text_mask` (max_text_len each,
tokenized when drawn), which the training step runs through the frozen encoder.

Clips whose grid or rate the vocabulary has no id for are left out (an eval split may hold some); `buckets` groups
the items by latent grid, so a batch drawn from one bucket holds sequences of one length (with a window, or clips
of one length).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from t2v.generator.attention import PREFIX
from t2v.generator.text import TextTokenizer
from t2v.generator.vocab import Vocab, first_slot
from t2v.core.chunks import ROW_CHUNK, chunked_where
from t2v.tokenizer.shards import ShardReader

if TYPE_CHECKING:
    from t2v.generator.text_encoder import EncoderTokenizer

IGNORE = -100


def shift_labels(ids: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """labels[j] = code of ids[j + 1] if it is a video id, else IGNORE; the last label is IGNORE."""
    labels = torch.full_like(ids, IGNORE)
    following = ids[1:]
    video = vocab.is_video(following)
    labels[:-1][video] = following[video] - vocab.video_start
    return labels


def masked_share(decoding: str, frames: int, frame_ids: int, rng: np.random.Generator) -> np.ndarray:
    """Which codes of each of `frames` query frames are MASK (frames, frame_ids): all for "frame"; for "masked",
    ⌈cos(π/2 · u) · frame_ids⌉ (at least one) at random places, u ~ U(0, 1) per frame (MaskGIT's schedule)."""
    if decoding == "frame":
        return np.ones((frames, frame_ids), dtype=bool)
    counts = np.maximum(1, np.ceil(np.cos(np.pi / 2 * rng.random(frames)) * frame_ids)).astype(int)
    ranks = np.argsort(rng.random((frames, frame_ids)), axis=1)  # a random order of each frame's places
    return ranks < counts[:, None]


def query_sequence(ids: torch.Tensor, positions: torch.Tensor, frames: int, frame_ids: int, vocab: Vocab,
                   masked: np.ndarray, clean: torch.Tensor | None = None,
                   previous: bool = False) -> dict[str, torch.Tensor]:
    """A training sequence `[prefix][video ids]…` (ids (L,), positions (3, L)) of `frames` latent frames of
    `frame_ids` codes → `[prefix][clean frames][query frames]` with the codes where `masked` (frames, frame_ids)
    hidden in the queries, labels on those, and each id's latent frame, query flag and guess flag. A hidden code
    reads MASK, or with `previous` the code at its place one latent frame earlier, flagged as a guess (MASK in the
    window's first frame). `clean` (the same ids with context noise, if any) gives the clean part the model
    attends to."""
    end = vocab.prefix_len + frames * frame_ids
    video = ids[vocab.prefix_len: end]
    hidden = torch.from_numpy(masked.reshape(-1))
    stand_in = torch.full_like(video, vocab.mask_id)
    guess = torch.zeros_like(hidden)
    if previous:
        stand_in[frame_ids:] = video[:-frame_ids]
        guess[frame_ids:] = hidden[frame_ids:]
    queries = torch.where(hidden, stand_in, video)
    labels = torch.full((end + video.numel(),), IGNORE, dtype=torch.long)
    labels[end:] = torch.where(hidden, video - vocab.video_start, IGNORE)
    frame_of = torch.arange(frames).repeat_interleave(frame_ids)
    return {"ids": torch.cat([(ids if clean is None else clean)[:end], queries]), "labels": labels,
            "positions": torch.cat([positions[:, :end], positions[:, vocab.prefix_len: end]], dim=1),
            "frame": torch.cat([torch.full((vocab.prefix_len,), PREFIX), frame_of, frame_of]),
            "query": torch.arange(end + video.numel()) >= end,
            "guess": torch.cat([torch.zeros(end, dtype=torch.bool), guess])}


def split_key(key: int) -> tuple[int, int]:
    """A latent grid packed as h << 32 | w → (h, w)."""
    return key >> 32, key & 0xFFFFFFFF


class _Memo:
    """`answer(value)` for each of an array's values, asked once per distinct value (a grid key or a rate)."""

    def __init__(self, answer) -> None:
        self.answer, self.known = answer, {}

    def __call__(self, values: np.ndarray) -> np.ndarray:
        distinct, inverse = np.unique(values, return_inverse=True)
        table = np.array([self.known.setdefault(value, bool(self.answer(value))) for value in distinct.tolist()],
                         dtype=bool)
        return table[inverse.reshape(-1)] if len(distinct) else np.zeros(0, dtype=bool)


class TokenSequences(Dataset):
    """Sequences of the shard rows of `split` (all rows when None), captions encoded with `text`, or with
    `encoder_tokens` for a generator that reads a text encoder; `decoding` (the generator's) chooses their layout."""

    def __init__(self, shards: str | Path | ShardReader, text: TextTokenizer, vocab: Vocab, split: str | None = None,
                 caption_dropout: float = 0.0, seed: int = 0, window: int = 0, context_noise: float = 0.0,
                 window_weight: float = 0.0, decoding: str = "token", previous: bool = False,
                 encoder_tokens: EncoderTokenizer | None = None) -> None:
        self.reader = shards if isinstance(shards, ShardReader) else ShardReader.open(shards)
        if self.reader.meta["codebook_size"] != vocab.codebook_size:
            raise ValueError(f"shards in {self.reader.directory} have {self.reader.meta['codebook_size']} codes, "
                             f"the generator's vocabulary {vocab.codebook_size}: encode with the matching tokenizer")
        reader = self.reader
        in_split = reader.select(split)  # clip numbers; the index: memory-mapped columns, read by chunks
        rates = reader.rates()
        if np.isnan(rates[in_split]).any():
            unknown_rate = int(in_split[int(np.argmax(np.isnan(rates[in_split])))])
            raise ValueError(f"clip {unknown_rate} of {reader.directory} has no frame rate (no fps in its row or in "
                             "meta.json): re-encode it with `t2v tokenizer encode`, which records each clip's fps")
        grids, known_rates = _Memo(lambda key: vocab.knows_grid(split_key(key))), _Memo(vocab.knows_rate)
        rows, windows, keys, long_enough = [], [], [], False
        for begin in range(0, len(in_split), ROW_CHUNK):
            clips = in_split[begin: begin + ROW_CHUNK]
            shapes = np.asarray(reader.shapes()[clips], dtype=np.int64)
            grid_keys = shapes[:, 1] << 32 | shapes[:, 2]
            long = shapes[:, 0] >= window
            long_enough |= bool(long.any())
            known = long & grids(grid_keys) & known_rates(rates[clips])
            rows.append(clips[known])
            windows.append(shapes[known, 0] - window + 1 if window else np.ones(int(known.sum())))
            keys.append(grid_keys[known])
        self.rows = np.concatenate(rows) if rows else in_split[:0]  # the clip number of each item
        if not len(self.rows):
            raise ValueError(f"no clips of split {split!r} in {reader.directory}" + (
                f" with at least {window} latent frames (the window)" if len(in_split) else "") + (
                " of a latent grid and frame rate the generator knows" if long_enough else ""))
        self.window, self.context_noise, self.decoding, self.previous = window, context_noise, decoding, previous
        # (items,) relative draw rates
        self.weights = np.power(np.concatenate(windows).astype(np.float64), window_weight)
        self.vocab = vocab
        self.text, self.encoder_tokens = text, encoder_tokens
        self.caption_dropout = caption_dropout
        self.seed = seed
        self.epoch = 0
        # item indices grouped by latent grid (h, w), in the order of the size table; no empty ones
        grid_of = np.concatenate(keys)
        by_grid = [chunked_where(len(grid_of), lambda start, stop: grid_of[start:stop] == (h << 32 | w))
                   for h, w in vocab.sizes]
        self.buckets = [indices for indices in by_grid if len(indices)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def caption(self, index: int) -> str:
        return self.reader.caption(self.rows[index])

    def pieces(self, index: int) -> list[int]:
        """The caption pieces of item `index`, encoded when drawn: a table of every caption would cost memory in
        proportion to the dataset."""
        return self.text.encode(self.caption(index), warn=False)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        codes = torch.from_numpy(self.reader.codes(row))  # (t, h, w)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        drop = rng.random() < self.caption_dropout
        start = 0
        if self.window:
            start = int(rng.integers(codes.shape[0] - self.window + 1))
            codes = codes[start: start + self.window]  # (W, h, w)
        pieces = None if drop else [] if self.encoder_tokens is not None else self.pieces(index)
        ids = self.vocab.sequence(pieces, codes, self.reader.fps(row))
        labels = shift_labels(ids, self.vocab)
        noisy_ids = ids
        if self.context_noise:
            noisy = torch.from_numpy(rng.random(len(ids)) < self.context_noise) & self.vocab.is_video(ids)
            random_codes = torch.from_numpy(rng.integers(self.vocab.codebook_size, size=len(ids)))
            noisy_ids = torch.where(noisy, self.vocab.video_ids(random_codes), ids)
        positions = self.vocab.positions(*codes.shape, t_start=first_slot(start == 0))
        if self.decoding != "token":
            frames, frame_ids = codes.shape[0], math.prod(codes.shape[1:])
            masked = masked_share(self.decoding, frames, frame_ids, rng)
            item = query_sequence(ids, positions, frames, frame_ids, self.vocab, masked, noisy_ids, self.previous)
        else:
            item = {"ids": noisy_ids, "labels": labels, "positions": positions}
        if self.encoder_tokens is not None:
            text_ids, text_mask = self.encoder_tokens([None if drop else self.caption(index)])
            item.update(text_ids=text_ids[0], text_mask=text_mask[0])
        return item
