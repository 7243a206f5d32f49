"""The generator's joint id layout: the one place where offsets live.

Ids are `[specials | sizes | rates | text | video]`:
- specials: PAD, BOS, BOV (begin of video), EOV (end of video), NULL (the null caption of classifier-free guidance);
- sizes: one id per latent grid (h, w) of the `sizes` table (the grids the generator was trained on);
- rates: one id per frame rate of the `rates` table (fps, as trained);
- text: sentencepiece piece `p` is id `text_start + p`;
- video: codebook entry `c` is id `video_start + c`;
- MASK (`mask_id`, only in the vocabulary of a generator that predicts several codes of a frame per pass): a code
  still to be drawn. It comes last, so a token-by-token generator's ids are the same with or without it.

A sequence is `[BOS][caption ids, padded with PAD to max_text_len][SIZE][FPS][BOV][video ids, (t h w) raster
order][EOV]`. The prefix (BOS … BOV) has a fixed length, so every clip of one latent grid packs to the same length
and the first video id sits at the same index whatever the caption. The size and rate ids follow the caption, so
the null caption of guidance (`null_prefix`) keeps them: both halves of a guided batch know the grid and the rate.
Grids and rates outside the tables have no id: `prefix` refuses them; `nearest_grid` / `nearest_rate` name the
closest trained ones (aspect ratio first, then area; rates by ratio).

Positions are 3D (t, h, w), as the multimodal rotary embedding takes them: prefix id `i` is at (i, i, i), the
video id at latent (t, h, w) is at (P + t, P + h, P + w) with P the prefix length. Only differences enter the
attention, so nothing is tied to one clip length or one frame size.

Slot 0 of the t axis belongs to a clip's first latent frame, which the causal video tokenizer encodes from one
frame alone (every later latent frame codes `temporal_stride` frames); a window cut from the middle of a clip starts
at slot 1 (`first_slot`). So a sequence says by its positions whether it starts a video or continues one,
and the sampler of long videos keeps its windows at slots 1 … W once the first frame has left the cache
(`frame_shift` moves cached keys back one slot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from t2v.generator.config import RATE_TOLERANCE, check_vocab

PAD, BOS, BOV, EOV, NULL = range(5)
NUM_SPECIALS = 5

Grid = tuple[int, int]  # a latent grid (h, w)


def format_grid(grid: Sequence[int]) -> str:
    """(h, w) → 'WxH', the order of `--size`."""
    return f"{grid[1]}x{grid[0]}"


def format_rates(rates: Iterable[float]) -> str:
    """(8.0, 16.0) → '8, 16 fps'."""
    return ", ".join(f"{rate:g}" for rate in rates) + " fps"


def first_slot(starts_video: bool) -> int:
    """The t slot of a sequence's first latent frame: 0 for a video's first latent frame, 1 for a later one."""
    return 0 if starts_video else 1


@dataclass(frozen=True)
class Vocab:
    """Id ranges for `text_size` sentencepiece pieces, `codebook_size` video codes, the latent grids `sizes` and
    the frame rates `rates` the generator is conditioned on."""

    text_size: int
    codebook_size: int
    max_text_len: int
    sizes: tuple[Grid, ...]
    rates: tuple[float, ...]
    mask: bool = False  # whether the MASK id exists (`mask_id`)

    def __post_init__(self) -> None:
        sizes, rates = check_vocab(self.text_size, self.codebook_size, self.max_text_len, self.sizes, self.rates)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "rates", rates)

    # --- ranges ---
    @property
    def size_start(self) -> int:
        return NUM_SPECIALS

    @property
    def rate_start(self) -> int:
        return self.size_start + len(self.sizes)

    @property
    def text_start(self) -> int:
        return self.rate_start + len(self.rates)

    @property
    def video_start(self) -> int:
        return self.text_start + self.text_size

    @property
    def video_end(self) -> int:
        """One past the last video id."""
        return self.video_start + self.codebook_size

    @property
    def mask_id(self) -> int:
        """The MASK id: a code of the frame being decoded that is not drawn yet."""
        if not self.mask:
            raise ValueError("this vocabulary has no MASK id (a token-by-token generator's)")
        return self.video_end

    @property
    def size(self) -> int:
        """Number of ids (the embedding table's rows)."""
        return self.video_end + self.mask

    @property
    def prefix_len(self) -> int:
        """Length of `[BOS][caption, padded][SIZE][FPS][BOV]`."""
        return self.max_text_len + 4

    def sequence_len(self, t: int, h: int, w: int) -> int:
        """Length of a whole sequence (prefix, video ids, EOV) for a latent grid (t, h, w)."""
        return self.prefix_len + t * h * w + 1

    # --- the size and rate tables ---
    def knows_grid(self, grid: Sequence[int]) -> bool:
        return (int(grid[0]), int(grid[1])) in self.sizes

    def knows_rate(self, fps: float) -> bool:
        return any(math.isclose(fps, rate, rel_tol=RATE_TOLERANCE) for rate in self.rates)

    def nearest_grid(self, grid: Sequence[int]) -> Grid:
        """The trained grid nearest to `grid` (h, w): the closest aspect ratio, then the closest area."""
        h, w = grid
        return min(self.sizes, key=lambda known: (round(abs(math.log(known[1] / known[0] * h / w)), 9),
                                                  abs(math.log(known[0] * known[1] / (h * w)))))

    def nearest_rate(self, fps: float) -> float:
        """The trained rate nearest to `fps` (by ratio)."""
        return min(self.rates, key=lambda rate: abs(math.log(rate / fps)))

    def size_id(self, grid: Sequence[int]) -> int:
        if not self.knows_grid(grid):
            raise ValueError(f"latent grid {format_grid(grid)} (WxH) has no size id: the generator knows "
                             f"{', '.join(map(format_grid, self.sizes))}")
        return self.size_start + self.sizes.index((int(grid[0]), int(grid[1])))

    def rate_id(self, fps: float) -> int:
        if not self.knows_rate(fps):
            raise ValueError(f"{fps:g} fps has no rate id: the generator knows {format_rates(self.rates)}")
        return self.rate_start + next(i for i, rate in enumerate(self.rates)
                                      if math.isclose(fps, rate, rel_tol=RATE_TOLERANCE))

    # --- ids ---
    def prefix(self, pieces: list[int] | None, grid: Sequence[int], fps: float) -> torch.Tensor:
        """`[BOS][caption][PAD…][SIZE][FPS][BOV]` for sentencepiece `pieces` (already truncated; None → the null
        caption), a trained latent grid (h, w) and a trained frame rate."""
        if pieces is None:
            body = [NULL]
        else:
            if len(pieces) > self.max_text_len:
                raise ValueError(f"caption has {len(pieces)} pieces, more than max_text_len={self.max_text_len}")
            if any(not 0 <= p < self.text_size for p in pieces):
                raise ValueError(f"text piece out of range 0..{self.text_size - 1}: {pieces}")
            body = [self.text_start + p for p in pieces]
        body = body + [PAD] * (self.max_text_len - len(body))
        return torch.tensor([BOS, *body, self.size_id(grid), self.rate_id(fps), BOV], dtype=torch.long)

    def null_prefix(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Prefixes (..., P) with their captions replaced by the null caption; size and rate ids kept."""
        null = prefixes.clone()
        null[..., 1] = NULL
        null[..., 2: 1 + self.max_text_len] = PAD
        return null

    def video_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook entries (any shape) → video ids."""
        return codes + self.video_start

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Video ids → codebook entries; raises if an id is outside the video range."""
        codes = ids - self.video_start
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError("ids outside the video range cannot be turned into codes")
        return codes

    def sequence(self, pieces: list[int] | None, codes: torch.Tensor, fps: float) -> torch.Tensor:
        """The whole training sequence for a caption (None: null caption), codes (t, h, w) and their frame rate."""
        video = self.video_ids(codes.reshape(-1))  # (t h w) raster order
        return torch.cat([self.prefix(pieces, codes.shape[1:], fps), video, torch.tensor([EOV])])

    def is_video(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.video_start) & (ids < self.video_end)

    # --- positions ---
    def prefix_positions(self) -> torch.Tensor:
        """(3, P) positions of the prefix ids."""
        return torch.arange(self.prefix_len).expand(3, -1)

    def video_positions(self, t_start: int, t: int, h: int, w: int) -> torch.Tensor:
        """(3, t·h·w) positions of latent frames t_start … t_start+t-1 of an (h, w) grid, raster order."""
        tt, hh, ww = torch.meshgrid(torch.arange(t_start, t_start + t), torch.arange(h), torch.arange(w),
                                    indexing="ij")
        return torch.stack([tt, hh, ww]).reshape(3, -1) + self.prefix_len  # (3, t*h*w)

    def frame_shift(self, frames: int) -> torch.Tensor:
        """(3, 1) position offset that moves a video id `frames` latent frames later (negative: earlier)."""
        return torch.tensor([[frames], [0], [0]])

    def positions(self, t: int, h: int, w: int, t_start: int = 0) -> torch.Tensor:
        """(3, L) positions of a whole sequence whose latent frames sit at slots t_start … t_start+t-1 (see
        `first_slot`); EOV follows the last frame on the t axis."""
        eov = torch.full((3, 1), self.prefix_len + t_start + t)
        return torch.cat([self.prefix_positions(), self.video_positions(t_start, t, h, w), eov], dim=1)
