"""KV-cached sampling of video codes: prefill the caption, then decode latent frame by latent frame, for any
number of frames with a cache bounded by a window of latent frames that rolls (`roll`).

Small functions with an explicit `torch.Generator` (a seed gives the same video) and an explicit `KVCache`.
Classifier-free guidance runs the conditional and the null caption (same size and rate ids: `Vocab.null_prefix`)
as one batch of 2B rows: both halves receive the same sampled code, and the logits are mixed as
`null + scale · (cond − null)` before sampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from t2v.generator.cache import KVCache
from t2v.generator.model import VideoGenerator
from t2v.generator.vocab import Vocab, first_slot


@dataclass
class SamplingConfig:
    """How codes are drawn: temperature, top-k (0 = off), top-p (1 = off), guidance scale (1 = off).

    The defaults are what scored best on the shapes verifier with CPU-sized models (guidance 3 at temperature 1
    drew incoherent objects there; 2 at 0.7 with top-k 20 kept them whole 4× as often).
    """

    temperature: float = 0.7
    top_k: int = 20
    top_p: float = 1.0
    cfg_scale: float = 2.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be ≥ 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.cfg_scale < 0:
            raise ValueError(f"guidance scale must be ≥ 0 (1 = no guidance), got {self.cfg_scale}")

    @property
    def guided(self) -> bool:
        return self.cfg_scale != 1.0


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set every logit outside the top-k and outside the top-p nucleus to -inf (B, C)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the ones before it already reach top_p: the first token always stays.
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def guide(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """(2B, C) logits of [conditional; null] rows → (B, C) guided logits."""
    cond, null = logits.chunk(2, dim=0)
    return null + scale * (cond - null)


def draw(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of (B, C) logits (already guided)."""
    if config.temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / config.temperature, config.top_k, config.top_p).softmax(-1)
    # The exponential race (argmax of p / E, E ~ Exp(1) i.i.d., is code i with probability p_i): what
    # torch.multinomial does for one sample, the same draws from the same generator, without its per-call checks.
    return probs.div_(torch.empty_like(probs).exponential_(generator=generator)).argmax(-1)


def next_codes(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Logits of the last position of every cache row → the next code of each sample (B,)."""
    if config.guided:
        logits = guide(logits, config.cfg_scale)
    return draw(logits, config, generator)


def prefill(model: VideoGenerator, rows: torch.Tensor, cache: KVCache,
            context: torch.Tensor | None = None, first: int = 0) -> torch.Tensor:
    """Run `[BOS][caption][SIZE][FPS][BOV]` rows (R, P), followed by the codes (B, c, h, w) of `context` latent
    frames at window slots first … first+c-1 when given (`vocab.first_slot`: 0 when the context opens the video),
    into an empty cache; the logits (R, C) for the next video id."""
    vocab = model.vocab
    positions = vocab.prefix_positions()
    if context is not None and context.shape[1]:
        _, c, h, w = context.shape
        video = vocab.video_ids(context.to(rows.device)).reshape(context.shape[0], -1)  # (B, c*h*w)
        rows = torch.cat([rows, video.repeat(rows.shape[0] // video.shape[0], 1)], dim=1)
        positions = torch.cat([positions, vocab.video_positions(first, c, h, w)], dim=1)
    return model(rows, positions.to(rows.device), cache, logits_from=rows.shape[1] - 1)[:, -1]


def decode_one(model: VideoGenerator, codes: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
               cache: KVCache) -> torch.Tensor:
    """Append one code per sample (B,) to every cache row at the rotary (cos, sin) of its position (1, 1, head_dim)
    each; the logits (R, C) for the next id."""
    ids = model.vocab.video_ids(codes)
    if cache.batch != ids.shape[0]:
        ids = ids.repeat(cache.batch // ids.shape[0])  # guidance: the same code in the null rows
    return model(ids[:, None], cache=cache, rotary=rotary)[:, -1]  # ids (R, 1)


def roll(model: VideoGenerator, cache: KVCache, frame_ids: int, shift: bool = True) -> None:
    """Drop the oldest latent frame (`frame_ids` ids after the prefix) from the cache; with `shift`, move every
    later video id one frame back in time by rotating its cached keys. The caption stays, and every query–key
    distance is one the model met in training. Exact because rotary rotations compose (keys at t rotated by -1
    equal keys at t-1). When the video's first frame (slot 0) leaves, the others stay where they are: a window
    that continues a video starts at slot 1 (`vocab.first_slot`)."""
    start = model.vocab.prefix_len
    cache.drop(start, frame_ids)
    if shift:
        cos, sin = model.rotary(model.vocab.frame_shift(-1))  # (1, 1, head_dim) each
        cache.rotate_keys(start, cos[0, 0], sin[0, 0])


def cache_rows(prefixes: torch.Tensor, vocab: Vocab, config: SamplingConfig) -> torch.Tensor:
    """The rows the model runs: the captions, followed by as many null captions (same size and rate ids) when
    guidance is on."""
    if not config.guided:
        return prefixes
    return torch.cat([prefixes, vocab.null_prefix(prefixes)], dim=0)


Schedule = list[tuple[int, torch.Tensor]]  # (first latent frame, caption prefixes (B, P)), by frame


@torch.inference_mode()
def sample_frames(model: VideoGenerator, prompts: torch.Tensor | Schedule, grid: tuple[int, int, int],
                  config: SamplingConfig, generator: torch.Generator | None = None, window: int | None = None,
                  context: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Sample `grid` = (t, h, w) new latent frames; yield codes (B, h, w) per latent frame.

    `prompts` is the caption prefixes (B, P) (their size ids name `grid`'s (h, w) or, forced, the nearest trained
    one), or a schedule [(0, prefixes), (frame, prefixes), …] that changes them at those latent frames. `context`
    (B, c, h, w) is a video's codes to go on from. `window` W bounds the cache to W latent frames whatever t is
    (default: all of them, no roll).

    1. At the start and at every prompt change: prefill the rows (captions, then null captions under guidance)
       with the last W-1 frames so far as context, from slot 0 when they include the video's first latent frame,
       else from slot 1; the logits predict the next frame's first code.
    2. For each of a frame's h·w positions: guide, draw, append the code to every row at its window slot.
    3. When a frame that fills the window is about to be completed and more follow, roll the window: the oldest
       frame leaves (the video's first: the rest stay at slots 1 …; a later one: the rest move back one slot),
       so the next frame again finds W-1 frames before it.

    It runs under `torch.inference_mode` (a small model decodes ~7% faster than under `no_grad`), so the codes it
    yields are inference tensors: fine to decode, not to record for autograd (`sample_codes` returns plain ones).
    """
    t, h, w = grid
    vocab = model.vocab
    device = model.head.weight.device
    schedule = [(0, prompts)] if isinstance(prompts, torch.Tensor) else sorted(prompts, key=lambda item: item[0])
    if not schedule or schedule[0][0] != 0:
        raise ValueError("a prompt schedule must start at frame 0")
    recent = [] if context is None else list(context.to(device).unbind(1))  # codes (B, h, w) per frame
    before = 0  # latent frames of the video before recent[0]
    window = window or len(recent) + t
    if window < 2:
        raise ValueError(f"the window must hold at least 2 latent frames, got {window}")
    changes = {frame: prefixes.to(device) for frame, prefixes in schedule}
    batch = schedule[0][1].shape[0]
    cos, sin = model.rotary(vocab.video_positions(0, window + 1, h, w))  # (1, (W+1)*h*w, head_dim): slots 0 … W
    cache = None
    for frame in range(t):
        if frame in changes:
            rows = cache_rows(changes[frame], vocab, config)
            cache = cache or model.new_cache(rows.shape[0], vocab.prefix_len + window * h * w)
            cache.truncate(0)
            kept = recent[len(recent) - min(len(recent), window - 1):]
            base = first_slot(before + len(recent) - len(kept) == 0)  # slot of the oldest frame in the cache
            logits = prefill(model, rows, cache, torch.stack(kept, dim=1) if kept else None, base)
            slot = base + len(kept)
        codes = torch.empty(batch, h * w, dtype=torch.long, device=device)
        for j in range(h * w):
            codes[:, j] = code = next_codes(logits, config, generator)
            if j == h * w - 1:
                if frame == t - 1 or frame + 1 in changes:
                    break  # nothing follows in this cache
                if slot - base == window - 1:
                    roll(model, cache, h * w, shift=base > 0)
                    if base > 0:
                        slot -= 1  # the others moved back one slot
                    else:
                        base = first_slot(False)  # the first frame left; the others stay at slots 1 …
            index = slot * h * w + j
            logits = decode_one(model, code, (cos[:, index: index + 1], sin[:, index: index + 1]), cache)
        recent.append(codes.view(batch, h, w))  # (B, h*w) -> (B, h, w)
        if len(recent) > window:
            before, recent = before + len(recent) - window, recent[-window:]
        slot += 1
        yield recent[-1]


def sample_codes(model: VideoGenerator, prompts: torch.Tensor | Schedule, grid: tuple[int, int, int],
                 config: SamplingConfig, generator: torch.Generator | None = None, window: int | None = None,
                 context: torch.Tensor | None = None) -> torch.Tensor:
    """All latent frames at once: codes (B, t, h, w)."""
    return torch.stack(list(sample_frames(model, prompts, grid, config, generator, window, context)), dim=1)
