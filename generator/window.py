"""The sampler's window: which latent frames of the video the KV cache holds, at which slots, and when to roll.

A cache of W latent frames holds, before each frame is decoded, the last W-1 frames of the video (fewer at the
start), so every frame is drawn with at most W-1 frames before it, as in training. Slots are the frames' time
positions inside the cache: from slot 0 while the window holds the video's first latent frame, from slot 1 once
that has left (`vocab.first_slot`: a window that continues a video starts at slot 1).

The rule, in the order the sampler meets it for each frame:
1. `refill` (a prompt change, always at frame 0): the cache is filled from scratch with the last W-1 frames.
2. `rotary`: the decoding strategy places the frame's ids at slot `slot`.
3. `needs_roll` → `roll`: a frame that fills the window pushes the oldest frame out before its last code goes in
   (the cache half of a roll is `sample.roll`); `advance`: the frame joins the cached ones.
The window keeps the codes of its frames, the only part of the video a refill needs; it holds no tensors of the
model but the rotary table of its slots.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from t2v.generator.vocab import first_slot


@dataclass
class Window:
    """The latent frames of the video the cache holds, oldest first, and the rotary table of its slots."""

    size: int  # W: latent frames the cache holds, the one being decoded included
    grid: tuple[int, int]  # (h, w) of a latent frame
    table: tuple[torch.Tensor, torch.Tensor]  # rotary (cos, sin) of every id at slots 0 … W, (1, (W+1)·h·w, dim)
    frames: list[torch.Tensor] = field(default_factory=list)  # codes (B, h, w) per cached frame, oldest first
    start: int = 0  # the video's latent frame held in frames[0]

    def __post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"the window must hold at least 2 latent frames, got {self.size}")

    @property
    def frame_ids(self) -> int:
        """Ids per latent frame: h·w."""
        return self.grid[0] * self.grid[1]

    @property
    def first(self) -> int:
        """Slot of the oldest cached frame: 0 while it is the video's first latent frame, else 1."""
        return first_slot(self.start == 0)

    @property
    def slot(self) -> int:
        """Slot of the frame being decoded: the one after the cached frames."""
        return self.first + len(self.frames)

    def refill(self) -> None:
        """Keep the last W-1 frames: what a prompt change prefills, so the next frame finds them before it."""
        drop = max(0, len(self.frames) - (self.size - 1))
        self.frames, self.start = self.frames[drop:], self.start + drop

    def codes(self) -> torch.Tensor | None:
        """Codes (B, c, h, w) of the cached frames; None when there are none."""
        return torch.stack(self.frames, dim=1) if self.frames else None

    def rotary(self, code: int, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary (cos, sin), (1, count, dim) each, of the ids code … code+count-1 (raster order inside the frame)
        of the frame being decoded, at its slot."""
        index = self.slot * self.frame_ids + code
        cos, sin = self.table
        return cos[:, index: index + count], sin[:, index: index + count]

    def needs_roll(self) -> bool:
        """Whether the frame being decoded fills the window: then the oldest frame leaves before the frame's last
        code goes in, and the next frame again finds W-1 frames before it."""
        return len(self.frames) == self.size - 1

    def roll(self) -> None:
        """The oldest frame has left the cache (`sample.roll`): the video's first one leaves the others at their
        slots (the window now starts at slot 1), a later one moves them back one slot."""
        self.frames, self.start = self.frames[1:], self.start + 1

    def advance(self, codes: torch.Tensor) -> None:
        """The frame being decoded is complete: its codes (B, h, w) join the cached frames."""
        self.frames.append(codes)
