"""Column-wise work over millions of rows a chunk of rows at a time, so that temporary arrays stay small at any
size (the memory-mapped index columns of tokenizer/index.py and the token shards' are read this way)."""
from __future__ import annotations

from typing import Callable

import numpy as np

ROW_CHUNK = 1 << 16  # rows a column-wise computation takes at a time


def chunked_where(n: int, mask: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The positions where `mask(start, stop)` holds, over rows [0, n) taken `ROW_CHUNK` at a time (int32 below
    2**31 rows): `np.flatnonzero` without an n-long temporary."""
    dtype = np.int32 if n < 2**31 else np.int64
    pieces = [(np.flatnonzero(mask(start, min(start + ROW_CHUNK, n))) + start).astype(dtype)
              for start in range(0, n, ROW_CHUNK)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
