"""Which ids attend to which: the generator's attention masks (True = may attend), for SDPA.

Two layouts (`GeneratorConfig.decoding`):
- token by token: causal over `[prefix][video ids]`; `causal_mask` is the mask of new ids after cached ones.
- several codes per pass ("frame", "masked"): a training sequence is `[prefix][clean frames][query frames]`, a
  query frame being a latent frame whose codes are partly or wholly MASK ids at that frame's positions. Each id is
  described by its latent frame (`PREFIX` for the caption prefix) and whether it is a query; `layout_mask` turns
  that into the mask: the prefix is causal; a clean frame sees the prefix and the clean frames up to itself (all
  of itself: bidirectional inside a frame); a query frame sees the prefix, the clean frames before it and itself.
  Nothing sees a query but its own frame's queries, so a sampler can run a query frame against the cache without
  keeping it (`decode_mask`), and the clean frames it keeps are exactly the training sequence's.
"""
from __future__ import annotations

import torch

PREFIX = -1  # the latent frame of a caption-prefix id
PADDING = -2  # the latent frame of padding (a query of its own frame: it sees only padding, nothing sees it)


def causal_mask(query_len: int, key_len: int, device: torch.device) -> torch.Tensor | None:
    """Causal mask for `query_len` new ids after `key_len - query_len` cached ones; None where SDPA's own
    causal flag (no cache) or no mask (one new id) is exact."""
    if query_len == 1 or query_len == key_len:
        return None
    past = key_len - query_len
    allowed = torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril(diagonal=past)
    return allowed[None, None]  # (1, 1, query_len, key_len)


def layout_mask(frame: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """The mask (B, 1, L, L) of sequences whose ids (B, L) lie in latent frames `frame` (PREFIX for the prefix,
    PADDING for padding) and are queries where `query` is True."""
    fi, fj = frame[:, :, None], frame[:, None, :]
    qi, qj = query[:, :, None], query[:, None, :]
    index = torch.arange(frame.shape[1], device=frame.device)
    prefix_j = (fj == PREFIX) & ~qj
    clean_j = (fj >= 0) & ~qj
    prefix_i = (fi == PREFIX) & ~qi
    sees_prefix = prefix_j & ((fi >= 0) | (prefix_i & (index[:, None] >= index[None, :])))  # the prefix: causal
    clean_sees = ~qi & (fi >= 0) & clean_j & (fj <= fi)
    query_sees = qi & ((clean_j & (fj < fi) & (fi >= 0)) | (qj & (fj == fi)))
    return (sees_prefix | clean_sees | query_sees)[:, None]


def decode_mask(past: int, pending: int, queries: int, device: torch.device) -> torch.Tensor:
    """The mask (1, 1, n, past + n) of a sampler's pass of n = pending + queries new ids after `past` cached ones:
    `pending` clean ids (a whole latent frame, or the prefix's last id) that the cache keeps, then `queries` query
    ids of the next frame that it does not. The pending ids see the cache and each other, the queries everything."""
    new = pending + queries
    allowed = torch.ones(new, past + new, dtype=torch.bool, device=device)
    allowed[:pending, past + pending:] = False
    return allowed[None, None]
