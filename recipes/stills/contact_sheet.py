"""A contact sheet of the stills dataset: one row per motion kind, frames spread over each clip.

    python -m t2v.recipes.stills.contact_sheet docs/images/stills_contact_sheet.png
    python -m t2v.recipes.stills.contact_sheet sheet.png --size 64 --fps 16 --split heldout --seed 3

Row k shows the first clip of kind KINDS[k] that `draw_clips` draws from the seed (clip i: generator (seed, i));
the captions are printed, one line a row, in order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from t2v.recipes.stills.dataset import FPS, FRAMES, KINDS, check_size, draw_caption, render_clip

MAX_DRAWS = 10_000  # draws tried to find a clip of each kind


def kind_clips(*, frames: int = FRAMES, size: tuple[int, int] = (128, 128), fps: float = FPS, split: str = "all",
               seed: int = 0) -> tuple[list[str], np.ndarray]:
    """The captions and uint8 (len(KINDS), T, H, W, 3) clips of the first clip of each kind, drawn as
    `draw_clips` draws clip i (a generator seeded by (seed, i))."""
    found: dict[str, tuple[str, np.ndarray]] = {}
    for i in range(MAX_DRAWS):
        rng = np.random.default_rng([seed, i])
        caption = draw_caption(rng, split)
        if caption.kind not in found:
            found[caption.kind] = caption.text, render_clip(caption, frames, size, rng, fps)
        if len(found) == len(KINDS):
            break
    return [found[kind][0] for kind in KINDS], np.stack([found[kind][1] for kind in KINDS])


def main(argv: list[str] | None = None) -> int:
    from t2v.tokenizer.video_io import contact_sheet, write_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .png to write")
    parser.add_argument("--size", type=int, default=128, help="frame side (square frames)")
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--fps", type=float, default=FPS)
    parser.add_argument("--split", choices=("seen", "heldout", "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=9, help="frames shown a clip")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing image")
    args = parser.parse_args(argv)
    try:
        check_size((args.size, args.size))
        captions, clips = kind_clips(frames=args.frames, size=(args.size, args.size), fps=args.fps, split=args.split,
                                     seed=args.seed)
        write_image(args.out, contact_sheet(clips, max_columns=args.columns), overwrite=args.overwrite)
    except (ValueError, OSError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    for kind, caption in zip(KINDS, captions):
        print(f"{kind}: {caption}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
