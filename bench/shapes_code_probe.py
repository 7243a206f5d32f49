"""Benchmark: do a tokenizer's codes carry each shapes attribute, and does its decoder render it? Prints a table and
writes JSON.

A small MLP (a probe) learns each attribute (shape, colour) of single frames from their quantized latents
(`codes_to_latent` of the codes, flattened), on `--train` frames, and is scored on `--test` others; beside it, the
verifier's reading of the same test frames' reconstructions. A probe well above the decoded frames' accuracy
means the codes hold what the decoder does not draw; a probe near chance means the codes never held it.

    python bench/shapes_code_probe.py runs/shapes/tokenizer
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import write_report  # bench/ is the script's directory, so on sys.path
from tokenizer_curve import first_frame_checks

from t2v.recipes.shapes.dataset import PALETTE, SHAPES, draw_clips
from t2v.tokenizer.frames import to_pixels
from t2v.tokenizer.model import VideoTokenizer

ATTRIBUTES = {"shape": (2, list(SHAPES)), "color": (1, list(PALETTE))}  # caption word index, values


def probe_accuracy(features: torch.Tensor, labels: torch.Tensor, train: int, epochs: int, seed: int) -> float:
    """Test accuracy of a 2-layer MLP trained on the first `train` rows (AdamW, batches of 100)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(features.shape[1], 512), torch.nn.GELU(), torch.nn.Linear(512, 512),
                              torch.nn.GELU(), torch.nn.Linear(512, int(labels.max()) + 1))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for batch in torch.randperm(train).split(100):
            loss = torch.nn.functional.cross_entropy(net(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float((net(features[train:]).argmax(1) == labels[train:]).float().mean())


def measure(model: VideoTokenizer, train: int, test: int, epochs: int, seed: int) -> dict[str, dict[str, float]]:
    """Per attribute: the probe's test accuracy and the verifier's on the decoded test frames."""
    clips = list(draw_clips(num=train + test, frames=1, seed=seed, split="seen"))
    captions = [row["caption"] for row, _ in clips]
    pixels = torch.cat([to_pixels(clip) for _, clip in clips])
    with torch.no_grad():
        codes = torch.cat([model.encode(part) for part in pixels.split(256)])
        features = model.quantizer.codes_to_latent(codes).flatten(1).float()
        decoded = torch.cat([model.decode(part) for part in codes[train:].split(256)])
    checks = first_frame_checks(decoded, captions[train:])
    result = {}
    for attribute, (word, values) in ATTRIBUTES.items():
        labels = torch.tensor([values.index(caption.split()[word]) for caption in captions])
        result[attribute] = {"probe": probe_accuracy(features, labels, train, epochs, seed),
                             "decoded": float(np.mean([getattr(check, attribute) for check in checks])),
                             "chance": 1 / len(values)}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer", type=Path, help="a tokenizer run or save_pretrained directory")
    parser.add_argument("--train", type=int, default=3000, help="frames the probe learns from")
    parser.add_argument("--test", type=int, default=1000, help="frames it is scored on")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shapes_code_probe.json"))
    args = parser.parse_args(argv)
    model = VideoTokenizer.from_pretrained(args.tokenizer).eval()
    result = measure(model, args.train, args.test, args.epochs, args.seed)
    print(f"{'attribute':<10} {'probe on codes':>15} {'decoded frames':>15} {'chance':>7}")
    for attribute, row in result.items():
        print(f"{attribute:<10} {row['probe']:>15.3f} {row['decoded']:>15.3f} {row['chance']:>7.3f}")
    report = {"tokenizer": str(args.tokenizer), "train": args.train, "test": args.test, "epochs": args.epochs,
              "seed": args.seed, "attributes": result}
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
