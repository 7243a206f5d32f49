"""KV-cached sampling of video codes: prefill the caption, then decode latent frame by latent frame, for any
number of frames with a cache bounded by a window of latent frames that rolls.

Small functions with an explicit `rng` (a `torch.Generator`: a seed gives the same video) and an explicit
`KVCache`, in layers:
- drawing: `filter_logits` (top-k, top-p), `guide`, `draw`, `next_codes` (logits → one code per sample);
- the cache: `prefill` (caption rows and context frames, the last block left `Pending`), `decode_one` (one code
  per row), `roll` (the oldest latent frame leaves; the bookkeeping half is `window.Window`);
- one latent frame: a decoding strategy, any function of the `FrameDecoder` signature, sibling functions:
  `decode_frame_sequential` (one code per forward pass, for "token" generators) and `decode_frame_parallel` (a frame
  in K passes of a query frame, for "frame" and "masked" generators); `frame_decoder` picks the one a generator was
  trained for (`GeneratorConfig.decoding`) with its passes;
- the top loop `sample_frames`, per latent frame: 1. prompt change (prefill), 2. decode the frame (the strategy),
  3. advance the window (roll when the frame fills it). Its `window` argument is a number of latent frames W (as
  everywhere in the pipeline and CLI); the `Window` object that keeps their bookkeeping is `kept` there.

Notable choices: the roll comes between drawing a frame's last code and appending it, so the logits of the next
frame's first code already see only the W-1 frames the window keeps; that is why a strategy leaves (at least) the
frame's last code pending for the top loop, which hands it to the next frame's first pass. The parallel strategy
leaves the whole frame pending, so appending it and the next frame's first query share one pass: K passes per latent
frame in all. A prompt change prefills the cache again (caption rows + the window's frames) rather than editing it.

Classifier-free guidance runs the conditional and the null caption (same size and rate ids: `Vocab.null_prefix`)
as one batch of 2B rows: both halves receive the same sampled codes, and the logits are mixed as
`null + scale · (cond − null)` before sampling. A generator that reads a text encoder takes its captions as
`Prefixes` (the ids and the encoder's states, computed once per prompt); its null rows read the learned null caption.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

from t2v.generator.attention import PREFIX, decode_mask, layout_mask
from t2v.generator.cache import KVCache
from t2v.generator.model import VideoGenerator
from t2v.generator.vocab import Vocab
from t2v.generator.window import Window


@dataclass
class SamplingConfig:
    """How codes are drawn: temperature (0 = greedy), top-k (0 = off), top-p (1 = off), guidance scale (1 = off),
    and forward passes per latent frame (None: the generator's own; only a "masked" generator takes a choice:
    `frame_decoder`). Defaults: guidance 2 at temperature 0.7 with top-k 20 (docs/RESULTS.md compares them with other
    settings)."""

    temperature: float = 0.7
    top_k: int = 20
    top_p: float = 1.0
    cfg_scale: float = 2.0
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be ≥ 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be ≥ 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.cfg_scale < 0:
            raise ValueError(f"guidance scale must be ≥ 0 (1 = no guidance), got {self.cfg_scale}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps (forward passes per latent frame) must be at least 1, got {self.steps}")

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


def probabilities(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """The distribution (B, C) codes are drawn from for (B, C) logits (already guided): tempered, top-k / top-p
    filtered; greedy (temperature 0): the plain softmax."""
    if config.temperature == 0:
        return logits.float().softmax(-1)
    return filter_logits(logits.float() / config.temperature, config.top_k, config.top_p).softmax(-1)


def race(probs: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """One code per row of (B, C) probabilities. The exponential race (argmax of p / E, E ~ Exp(1) i.i.d., is code
    i with probability p_i): what torch.multinomial does for one sample, the same draws from the same rng, without
    its per-call checks."""
    return (probs / torch.empty_like(probs).exponential_(generator=rng)).argmax(-1)


def draw(logits: torch.Tensor, config: SamplingConfig, rng: torch.Generator | None) -> torch.Tensor:
    """One code per row of (B, C) logits (already guided)."""
    if config.temperature == 0:
        return logits.argmax(-1)
    return race(probabilities(logits, config), rng)


def next_codes(logits: torch.Tensor, config: SamplingConfig, rng: torch.Generator | None) -> torch.Tensor:
    """Logits of the last position of every cache row → the next code of each sample (B,)."""
    if config.guided:
        logits = guide(logits, config.cfg_scale)
    return draw(logits, config, rng)


@dataclass
class Prefixes:
    """Caption prefixes of B rows: ids (B, P) and, for a generator that reads a text encoder (text_encoder.py), its
    states `text` (B, max_text_len, width) and `text_mask` (B, max_text_len) of each row's caption."""

    ids: torch.Tensor
    text: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None

    @classmethod
    def of(cls, prefixes: "torch.Tensor | Prefixes") -> "Prefixes":
        """`prefixes`, or ids (B, P) alone as `Prefixes`."""
        return prefixes if isinstance(prefixes, Prefixes) else cls(prefixes)

    def map(self, fn) -> "Prefixes":
        """`fn` applied to each tensor (ids, states, mask)."""
        return Prefixes(fn(self.ids), *(None if t is None else fn(t) for t in (self.text, self.text_mask)))


@dataclass
class Pending:
    """Ids the next forward pass appends to the cache before anything else: `ids` (R, n) for every cache row, at
    rotary (cos, sin) (1, n, head_dim) each. The prefill leaves its last block pending and the top loop a drawn
    frame's codes not yet cached, so a strategy runs them in its first pass (for a query frame, together with it)."""

    ids: torch.Tensor
    rotary: tuple[torch.Tensor, torch.Tensor]


def for_rows(ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Ids (B, n) of the samples → (R, n) for every cache row (under guidance the null rows get the same ids)."""
    return ids.repeat(cache.batch // ids.shape[0], 1)


def prefill(model: VideoGenerator, rows: torch.Tensor | Prefixes, cache: KVCache,
            context: torch.Tensor | None = None, first: int = 0) -> Pending:
    """Run `[BOS][caption][SIZE][FPS][BOV]` rows (R, P) (with their encoder states: `Prefixes`), followed by the
    codes (B, c, h, w) of `context` latent frames at window slots first … first+c-1 when given (`vocab.first_slot`:
    0 when the context opens the video), into an empty cache, all but the last block, which is returned pending:
    the last id for a token-by-token generator, the last context frame (or BOV) for one that sees a whole frame at
    once."""
    prefixes = Prefixes.of(rows)
    rows = prefixes.ids
    vocab = model.vocab
    positions = vocab.prefix_positions()
    frame = torch.full((vocab.prefix_len,), PREFIX)
    last = 1
    if context is not None and context.shape[1]:
        _, c, h, w = context.shape
        video = vocab.video_ids(context.to(rows.device)).reshape(context.shape[0], -1)  # (B, c*h*w)
        rows = torch.cat([rows, for_rows(video, cache)], dim=1)
        positions = torch.cat([positions, vocab.video_positions(first, c, h, w)], dim=1)
        frame = torch.cat([frame, torch.arange(c).repeat_interleave(h * w)])
        last = 1 if model.config.decoding == "token" else h * w
    cached = rows.shape[1] - last
    if cached:
        mask = None
        if model.config.decoding != "token":
            mask = layout_mask(frame[None, :cached], torch.zeros(1, cached, dtype=torch.bool)).to(rows.device)
        model(rows[:, :cached], positions[:, :cached].to(rows.device), cache, logits_from=cached, attention=mask,
              text=prefixes.text, text_mask=prefixes.text_mask)
    return Pending(rows[:, cached:], model.rotary(positions[:, cached:]))


def decode_one(model: VideoGenerator, codes: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
               cache: KVCache) -> torch.Tensor:
    """Append one code per sample (B,) to every cache row at the rotary (cos, sin) of its position (1, 1, head_dim)
    each; the logits (R, C) for the next id."""
    return run_pending(model, Pending(for_rows(model.vocab.video_ids(codes)[:, None], cache), rotary), cache)


def run_pending(model: VideoGenerator, pending: Pending, cache: KVCache) -> torch.Tensor:
    """Append pending ids (causally) to the cache; the logits (R, C) of the last one."""
    return model(pending.ids, cache=cache, rotary=pending.rotary, logits_from=pending.ids.shape[1] - 1)[:, -1]


def roll(model: VideoGenerator, cache: KVCache, frame_ids: int, shift: bool = True) -> None:
    """Drop the oldest latent frame (`frame_ids` ids after the prefix) from the cache; with `shift`, move every
    later video id one frame back in time by rotating its cached keys. The caption stays, and every query–key
    distance is one the model met in training. Exact because rotary rotations compose (keys at t rotated by -1
    equal keys at t-1). When the video's first frame (slot 0) leaves, the others stay where they are: a window
    that continues a video starts at slot 1 (`vocab.first_slot`). The window's bookkeeping follows: `Window.roll`."""
    start = model.vocab.prefix_len
    cache.drop(start, frame_ids)
    if shift:
        cos, sin = model.rotary(model.vocab.frame_shift(-1), torch.float32)  # (1, 1, head_dim) each, fp32
        cache.rotate_keys(start, cos[0, 0], sin[0, 0])


def cache_rows(prefixes: Prefixes, vocab: Vocab, config: SamplingConfig) -> Prefixes:
    """The rows the model runs: the captions, followed by as many null captions (same size and rate ids; their
    encoder states, unread, the captions') when guidance is on."""
    if not config.guided:
        return prefixes
    rows = prefixes.map(lambda tensor: torch.cat([tensor, tensor], dim=0))
    rows.ids[len(prefixes.ids):] = vocab.null_prefix(prefixes.ids)
    return rows


Schedule = list[tuple[int, "torch.Tensor | Prefixes"]]  # (first latent frame, caption prefixes (B, P)), by frame


class FrameDecoder(Protocol):
    """A decoding strategy: the codes (B, h, w) of the latent frame at `window.slot`.

    On entry the cache holds the caption rows and the window's frames but the `pending` ids (the prefill's last
    block, or the frame before's codes not cached yet), which the strategy's first forward pass appends (R = B rows,
    or 2B under guidance: `next_codes` / `draw_frame` guide and draw). The strategy draws all h·w codes from `rng`
    and may append some of them, in raster order, at their positions (`window.rotary`); the top loop makes the
    others pending, after the window has made room when the frame fills it.
    """

    def __call__(self, model: VideoGenerator, cache: KVCache, window: Window, pending: Pending,
                 config: SamplingConfig, rng: torch.Generator | None) -> torch.Tensor: ...


def decode_frame_sequential(model: VideoGenerator, cache: KVCache, window: Window, pending: Pending,
                            config: SamplingConfig, rng: torch.Generator | None) -> torch.Tensor:
    """The strategy of "token" generators: one code per forward pass, in raster order, each drawn from the logits
    of the id before it; all but the last are appended."""
    h, w = window.grid
    logits = run_pending(model, pending, cache)
    codes = []
    for j in range(h * w):
        codes.append(next_codes(logits, config, rng))  # (B,)
        if j < h * w - 1:
            logits = decode_one(model, codes[-1], window.rotary(j), cache)
    return torch.stack(codes, dim=1).view(-1, h, w)  # (B, h*w) -> (B, h, w)


def reveal_counts(passes: int, frame_ids: int) -> list[int]:
    """Codes each of `passes` passes reveals of a frame of `frame_ids`: MaskGIT's cosine schedule (known after
    pass k: frame_ids · (1 − cos(π/2 · (k+1)/passes))), at least one per pass, all of them after the last."""
    counts, known = [], 0
    for step in range(passes):
        target = round(frame_ids * (1 - math.cos(math.pi / 2 * (step + 1) / passes)))
        target = max(known + 1, min(target, frame_ids - (passes - 1 - step)))
        counts.append(target - known)
        known = target
    return counts


def draw_frame(logits: torch.Tensor, config: SamplingConfig, rng: torch.Generator | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (R, n, C) of a query frame → a code per place (B, n) and its probability under the distribution it
    was drawn from (greedy: the softmax), after guidance."""
    if config.guided:
        logits = guide(logits, config.cfg_scale)
    batch, n, size = logits.shape
    flat = logits.reshape(batch * n, size)
    probs = probabilities(flat, config)  # once, for the draw and its confidence
    codes = flat.argmax(-1) if config.temperature == 0 else race(probs, rng)
    confidence = probs.gather(1, codes[:, None])[:, 0]
    return codes.view(batch, n), confidence.view(batch, n)


def decode_frame_parallel(model: VideoGenerator, cache: KVCache, window: Window, pending: Pending,
                          config: SamplingConfig, rng: torch.Generator | None, passes: int | None = None
                          ) -> torch.Tensor:
    """The strategy of "frame" and "masked" generators: the frame in `passes` forward passes of a query frame
    (its codes so far; where none is drawn yet, the previous latent frame's code as a guess, or MASK: the
    generator's `query_input`) that the cache does not keep. Each pass draws a code for
    every masked place and keeps the most probable of those draws, as many as `reveal_counts` says (one pass: the whole
    frame at once; default: the generator's `frame_passes`, at most h·w); the first pass also appends the pending
    ids. No code of the frame is appended: the top loop makes it pending, for the next frame's first pass."""
    vocab = model.vocab
    h, w = window.grid
    n = h * w
    passes = passes or min(model.config.frame_passes, n)
    if not 1 <= passes <= n:
        raise ValueError(f"passes per latent frame must be between 1 and {n} (the codes of a {w}x{h} frame), "
                         f"got {passes}")
    queries = window.rotary(0, n)
    device = pending.ids.device
    batch = cache.batch // (2 if config.guided else 1)
    codes = torch.zeros(batch, n, dtype=torch.long, device=device)
    known = torch.zeros(batch, n, dtype=torch.bool, device=device)
    # what a place not drawn yet reads: the code there one latent frame earlier (a guess), or MASK
    guessing = model.config.query_input == "previous" and bool(window.frames)
    stand_in = vocab.video_ids(window.frames[-1].flatten(1)) if guessing else torch.full_like(codes, vocab.mask_id)
    for step, count in enumerate(reveal_counts(passes, n)):
        ids = for_rows(torch.where(known, vocab.video_ids(codes), stand_in), cache)
        guesses = for_rows(~known, cache) if guessing else None
        ahead = pending.ids.shape[1] if step == 0 else 0  # ids the cache keeps, before the query frame
        if ahead:
            ids = torch.cat([pending.ids, ids], dim=1)
            rotary = tuple(torch.cat(pair, dim=1) for pair in zip(pending.rotary, queries))
            if guesses is not None:
                guesses = torch.cat([torch.zeros_like(pending.ids, dtype=torch.bool), guesses], dim=1)
        else:
            rotary = queries
        mask = decode_mask(cache.length, ahead, n, device)
        logits = model(ids, cache=cache, rotary=rotary, attention=mask, keep=ahead, logits_from=ahead,
                       guesses=guesses)
        drawn, confidence = draw_frame(logits, config, rng)  # (B, n) each
        confidence = confidence.masked_fill(known, -1.0)
        chosen = torch.zeros_like(known).scatter_(1, confidence.topk(count, dim=1).indices, True)
        codes = torch.where(chosen, drawn, codes)
        known |= chosen
    return codes.view(batch, h, w)


def frame_decoder(model: VideoGenerator, steps: int | None = None, grid: tuple[int, int] | None = None
                  ) -> FrameDecoder:
    """The strategy a generator was trained for (`GeneratorConfig.decoding`), with `steps` forward passes per
    latent frame where it allows a choice ("masked": 1 … h·w, default `frame_passes` or h·w if fewer; "frame": 1;
    "token": h·w, one code per pass). A value it cannot take (checked against the latent `grid` (h, w) when given)
    is a one-line ValueError."""
    config = model.config
    frame_ids = grid[0] * grid[1] if grid else None
    if config.decoding == "token":
        if steps is not None and steps != frame_ids:
            raise ValueError(f"--steps {steps}: this generator decodes token by token (decoding 'token'), one "
                             f"forward pass per code; leave --steps out (only a 'masked' generator takes a number)")
        return decode_frame_sequential
    if config.decoding == "frame":
        if steps not in (None, 1):
            raise ValueError(f"--steps {steps}: this generator predicts a whole latent frame in one pass (decoding "
                             f"'frame'); leave --steps out (only a 'masked' generator takes a number)")
        return functools.partial(decode_frame_parallel, passes=1)
    if steps is not None and (steps < 1 or (frame_ids and steps > frame_ids)):
        raise ValueError(f"--steps {steps}: a latent frame of {frame_ids or 'its'} codes takes 1 to "
                         f"{frame_ids or 'that many'} forward passes; give a number in that range")
    return functools.partial(decode_frame_parallel, passes=steps)


@torch.inference_mode()
def sample_frames(model: VideoGenerator, prompts: torch.Tensor | Prefixes | Schedule, grid: tuple[int, int, int],
                  config: SamplingConfig, rng: torch.Generator | None = None, window: int | None = None,
                  context: torch.Tensor | None = None,
                  decode_frame: FrameDecoder | None = None) -> Iterator[torch.Tensor]:
    """Sample `grid` = (t, h, w) new latent frames; yield codes (B, h, w) per latent frame.

    `prompts` is the caption prefixes (B, P) (their size ids name `grid`'s (h, w) or, forced, the nearest trained
    one; `Prefixes` with the encoder's states for a generator that reads a text encoder), or a schedule
    [(0, prefixes), (frame, prefixes), …] that changes them at those latent frames. `context` (B, c, h, w) is a
    video's codes to go on from. `window` W (a number of latent frames) bounds the cache to W latent frames whatever
    t is (default: all of them, no roll); `kept`, the `Window` of that size, tracks the frames the cache holds.
    `decode_frame` is the decoding strategy (`FrameDecoder`; default: the one the generator was trained for, with
    `config.steps` passes per frame: `frame_decoder`).

    For each latent frame:
    1. Prompt change (always at frame 0): prefill the rows (captions, then null captions under guidance) with the
       window's last W-1 frames so far as context (`Window.refill`), from slot 0 when they include the video's first
       latent frame, else from slot 1; its last block is left pending.
    2. Decode the frame: `decode_frame` runs the pending ids, draws the frame's h·w codes and may append some.
    3. Advance the window, unless nothing follows in this cache (the last frame, or a prompt change next): when the
       frame fills the window, roll it first (the oldest frame leaves: the video's first leaves the rest at slots
       1 …, a later one moves them back one slot), so the next frame again finds W-1 frames before it; then the
       frame's codes the strategy did not append become pending at their slot.

    It runs under `torch.inference_mode` (no autograd bookkeeping at all), so the codes it yields are inference
    tensors: fine to decode, not to record for autograd (`sample_codes` returns plain ones).
    """
    t, h, w = grid
    vocab = model.vocab
    device = model.head.weight.device
    decode_frame = decode_frame or frame_decoder(model, config.steps, (h, w))
    single = isinstance(prompts, (torch.Tensor, Prefixes))
    schedule = [(0, prompts)] if single else sorted(prompts, key=lambda item: item[0])
    if not schedule or schedule[0][0] != 0:
        raise ValueError("a prompt schedule must start at frame 0")
    frames = [] if context is None else list(context.to(device).unbind(1))  # codes (B, h, w) per frame
    size = window or len(frames) + t  # W
    # The frames the cache keeps (the `Window` of W latent frames) and the rotary table of its slots 0 … W.
    kept = Window(size, (h, w), model.rotary(vocab.video_positions(0, size + 1, h, w)), frames)
    changes = {frame: Prefixes.of(prefixes).map(lambda tensor: tensor.to(device)) for frame, prefixes in schedule}
    cache = None
    for frame in range(t):
        # 1. Prompt change: the cache starts again from the caption rows and the window's frames.
        if frame in changes:
            rows = cache_rows(changes[frame], vocab, config)
            cache = cache or model.new_cache(rows.ids.shape[0], vocab.prefix_len + kept.size * h * w)
            cache.truncate(0)
            kept.refill()
            pending = prefill(model, rows, cache, kept.codes(), kept.first)
        # 2. Decode the frame: the pending ids run, every code is drawn, some may be appended.
        start = cache.length + pending.ids.shape[1]
        codes = decode_frame(model, cache, kept, pending, config, rng)  # (B, h, w)
        # 3. Advance the window: roll when the frame fills it; the codes not cached yet become pending.
        if frame + 1 < t and frame + 1 not in changes:
            cached = cache.length - start
            if kept.needs_roll():
                roll(model, cache, kept.frame_ids, shift=kept.first > 0)
                kept.roll()
            rest = vocab.video_ids(codes.flatten(1)[:, cached:])
            pending = Pending(for_rows(rest, cache), kept.rotary(cached, kept.frame_ids - cached))
        kept.advance(codes)
        yield codes


def sample_codes(model: VideoGenerator, prompts: torch.Tensor | Prefixes | Schedule, grid: tuple[int, int, int],
                 config: SamplingConfig, rng: torch.Generator | None = None, window: int | None = None,
                 context: torch.Tensor | None = None, decode_frame: FrameDecoder | None = None) -> torch.Tensor:
    """All latent frames at once: codes (B, t, h, w)."""
    return torch.stack(list(sample_frames(model, prompts, grid, config, rng, window, context, decode_frame)), dim=1)
