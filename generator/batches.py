"""Generator micro-batches as a pure function of (seed, rank, step, micro-step): a bucket (one latent grid) and
its clips drawn from those numbers, caption dropout seeded by them, sequences padded into one batch. A resumed or
re-ranked run draws exactly the batches of the uninterrupted one."""
from __future__ import annotations

import numpy as np
import torch

from t2v.generator.attention import PADDING
from t2v.generator.config import GeneratorTrainConfig
from t2v.generator.data import IGNORE, TokenSequences
from t2v.generator.vocab import PAD


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack sequences, padding shorter ones at the end (PAD ids, ignored labels, position 0; in the query layout,
    padding frames that nothing attends to)."""
    length = max(len(item["ids"]) for item in items)
    ids = torch.full((len(items), length), PAD, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(items), 3, length), dtype=torch.long)
    batch = {"ids": ids, "labels": labels, "positions": positions}
    if "frame" in items[0]:
        batch["frame"] = torch.full((len(items), length), PADDING, dtype=torch.long)
        batch["query"] = torch.ones((len(items), length), dtype=torch.bool)
        batch["guess"] = torch.zeros((len(items), length), dtype=torch.bool)
    for row, item in enumerate(items):
        n = len(item["ids"])
        for name, tensor in batch.items():
            tensor[row, ..., :n] = item[name]
    if "text_ids" in items[0]:  # a text encoder's tokens: max_text_len each
        batch.update({name: torch.stack([item[name] for item in items]) for name in ("text_ids", "text_mask")})
    return batch


def draw_indices(dataset: TokenSequences, batch_size: int, rng: np.random.Generator) -> list[int]:
    """`batch_size` item indices of one latent grid: a bucket drawn in proportion to its clips' weights, then clips
    in it in proportion to theirs (`TokenSequences.weights`; with one bucket, clips of the whole dataset)."""
    buckets, weights = dataset.buckets, dataset.weights
    bucket = buckets[0]
    if len(buckets) > 1:
        totals = np.array([weights[indices].sum() for indices in buckets])
        bucket = buckets[int(rng.choice(len(buckets), p=totals / totals.sum()))]
    inside = weights[bucket]
    if np.all(inside == inside[0]):  # equal weights: plain integers, the draws of runs made before window_weight
        picks = rng.integers(len(bucket), size=batch_size)
    else:
        picks = rng.choice(len(bucket), size=batch_size, p=inside / inside.sum())
    return [bucket[i] for i in picks]


def draw_micro_batch(dataset: TokenSequences, config: GeneratorTrainConfig, rank: int, step: int,
                     micro: int) -> dict[str, torch.Tensor]:
    """Micro-batch `micro` of `rank` at `step`, sequences of one latent grid: its bucket, clips and caption dropout
    depend on those numbers and the seed only."""
    rng = np.random.default_rng((config.seed, rank, step, micro))
    indices = draw_indices(dataset, config.batch_size, rng)
    dataset.set_epoch(step * config.grad_accum + micro)
    return collate([dataset[index] for index in indices])


def draw_step(dataset: TokenSequences, config: GeneratorTrainConfig, rank: int,
              step: int) -> list[dict[str, torch.Tensor]]:
    """The `grad_accum` micro-batches of `rank` at `step` (what a data worker hands the trainer)."""
    return [draw_micro_batch(dataset, config, rank, step, micro) for micro in range(config.grad_accum)]
