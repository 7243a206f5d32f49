"""Benchmark: data throughput of training. Does each loader keep up with the training step it feeds?

(a) the tokenizer's loader: the real `ClipDataset` (mp4 decode, random 17-frame clip of a 33-frame file, so clip
    starts vary, resize/crop to 128×128, to pixels) under `step_loader` with 0, 1 and 2 worker processes; clips/s
    after the first batch (worker start-up excluded), the batch of `--loader-batch` clips;
(b) the generator's shard reader: `TokenSequences` over memory-mapped shards of random 5×16×16 codes (a 17-frame
    128×128 clip at strides 4 and 8), drawn as training draws them (`draw_micro_batch`, in the training process);
    tokens/s = ids of whole sequences;
(c) what the training steps consume, for the B presets: a tokenizer step (`Trainer.train_step`: generator-side
    loss without LPIPS, whose weights need a download, and before the GAN starts: the lightest step, so the
    hardest for a loader to feed) in clips/s at 17×128×128, and a generator step (forward, cross-entropy on video
    ids, backward, AdamW: what the DeepSpeed engine runs, without the engine) in tokens/s. One warm-up step, then
    `--step-repeats` timed ones: slow on a CPU. GPU figures can be given instead (`--tokenizer-clips-per-s`,
    `--generator-tokens-per-s`) and are then compared too.

loader/step ratio = what the loader delivers ÷ what the step consumes; ≥ 1 keeps up. The loaders are measured
alone: during training on a CPU they share its cores with the step (on a GPU machine they do not).

    python bench/data_speed.py                                        # ~5 min on a 2-core CPU (B steps)
    python bench/data_speed.py --tokenizer-clips-per-s 60 --generator-tokens-per-s 250000   # with GPU figures
    python bench/data_speed.py --quick                                # tiny sizes: checks the script runs
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from report import write_report  # bench/ is the script's directory, so on sys.path
from train_speed import make_shards

from t2v.generator.data import IGNORE, TokenSequences
from t2v.generator.model import VideoGenerator
from t2v.generator.config import preset as generator_preset
from t2v.generator.text import TextTokenizer
from t2v.generator.batches import draw_micro_batch
from t2v.generator.train import trained_tables
from t2v.generator.config import GeneratorTrainConfig
from t2v.recipes.shapes.dataset import all_captions, make_dataset
from t2v.tokenizer.data import ClipDataset, Phase, step_loader
from t2v.tokenizer.config import LossConfig
from t2v.tokenizer.config import preset as tokenizer_preset
from t2v.tokenizer.shards import ShardReader
from t2v.tokenizer.train import Trainer
from t2v.tokenizer.config import DataConfig, TokenizerTrainConfig


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run: the full one, or `--quick`'s tiny one."""

    files: int = 48  # mp4 files of `file_frames` frames
    file_frames: int = 33
    frames: int = 17  # clip length
    size: int = 128  # H = W
    loader_batch: int = 4
    loader_steps: int = 40  # batches per worker count (the first is not timed)
    worker_counts: tuple[int, ...] = (0, 1, 2)
    grid: tuple[int, int, int] = (5, 16, 16)  # latent grid of a clip
    codebook: int = 64_000  # the B tokenizer's FSQ codebook (8·8·8·5·5·5)
    shard_clips: int = 512
    reader_batch: int = 8
    reader_steps: int = 200
    tokenizer_preset: str = "B"
    tokenizer_batch: int = 1
    generator_preset: str = "B"
    generator_batch: int = 1
    step_repeats: int = 1


QUICK = Settings(files=6, file_frames=9, frames=5, size=32, loader_batch=2, loader_steps=4, grid=(2, 4, 4),
                 codebook=64, shard_clips=16, reader_batch=2, reader_steps=10, tokenizer_preset="tiny",
                 generator_preset="tiny")
MAX_TEXT_LEN = 12


# (a) the tokenizer's loader --------------------------------------------------------------------------------------
def loader_clips_per_s(index: Path, settings: Settings, num_workers: int) -> float:
    """Clips/s of `step_loader` over the real ClipDataset, after its first batch."""
    clips = ClipDataset(index, num_frames=settings.frames, size=(settings.size, settings.size), crop="random")
    loader = step_loader([Phase(clips, settings.loader_batch)], seed=0, rank=0, steps=range(settings.loader_steps),
                         num_workers=num_workers, prefetch_batches=2)
    batches = iter(loader)
    next(batches)  # workers started, first batch decoded
    start = time.perf_counter()
    count = sum(len(batch["video"]) for batch in batches)
    return count / (time.perf_counter() - start)


# (b) the generator's shard reader ----------------------------------------------------------------------------------
def token_sequences(shards: Path) -> TokenSequences:
    """The generator's training dataset over `shards`, captions encoded by a caption tokenizer trained here."""
    text = TextTokenizer.train([caption.text for caption in all_captions()], vocab_size=100, max_len=MAX_TEXT_LEN)
    reader = ShardReader.open(shards)
    sizes, rates = trained_tables(reader, None)
    config = generator_preset("tiny", text_size=text.size, max_text_len=MAX_TEXT_LEN,
                              codebook_size=int(reader.meta["codebook_size"]), sizes=sizes, rates=rates)
    return TokenSequences(reader, text, config.vocab, split=None, caption_dropout=0.1)


def reader_tokens_per_s(dataset: TokenSequences, settings: Settings) -> float:
    """Ids/s of micro-batches drawn as generator training draws them."""
    config = GeneratorTrainConfig(batch_size=settings.reader_batch)
    draw_micro_batch(dataset, config, 0, 0, 0)  # warm: the memory maps' first pages
    start, tokens = time.perf_counter(), 0
    for step in range(1, settings.reader_steps + 1):
        tokens += draw_micro_batch(dataset, config, 0, step, 0)["ids"].numel()
    return tokens / (time.perf_counter() - start)


# (c) the training steps ---------------------------------------------------------------------------------------------
def timed_steps(step, repeats: int) -> float:
    """Seconds per call of `step` over `repeats` calls after one warm-up call."""
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def tokenizer_step_clips_per_s(index: Path, settings: Settings, run_dir: Path) -> float:
    """Clips/s of the tokenizer trainer's step at the settings' clip shape."""
    config = TokenizerTrainConfig(
        name="bench", model=tokenizer_preset(settings.tokenizer_preset),
        loss=LossConfig(perceptual_weight=0.0, discriminator_start=10**9),
        data=DataConfig(index=str(index), train_split=None, eval_split=None, num_frames=settings.frames,
                        size=(settings.size, settings.size)), batch_size=settings.tokenizer_batch, steps=10**6)
    trainer = Trainer(config, run_dir)
    video = trainer.batch(0)
    return settings.tokenizer_batch / timed_steps(lambda: trainer.train_step(video), settings.step_repeats)


def generator_step_tokens_per_s(dataset: TokenSequences, settings: Settings) -> float:
    """Ids/s of a generator training step (fp32 on CPU, bf16 autocast on CUDA as the engine's bf16)."""
    vocab = dataset.vocab
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = VideoGenerator(generator_preset(settings.generator_preset, text_size=vocab.text_size,
                                            codebook_size=vocab.codebook_size, max_text_len=vocab.max_text_len))
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = draw_micro_batch(dataset, GeneratorTrainConfig(batch_size=settings.generator_batch), 0, 0, 0)
    batch = {name: tensor.to(device) for name, tensor in batch.items()}
    start = vocab.prefix_len - 1  # logits from BOV on, as generator/train.py's Trainer.loss

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch["ids"], batch["positions"], logits_from=start)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"][:, start:].flatten(),
                               ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch["ids"].numel() / timed_steps(step, settings.step_repeats)


# the report ----------------------------------------------------------------------------------------------------------
def ratio_row(loader: str, num_workers: int, rate: float, unit: str, here: float, given: float | None) -> dict:
    """One loader's rate and its loader/step ratios against the step measured here and the one given."""
    row = {"loader": loader, "num_workers": num_workers, "rate": round(rate, 1), "unit": unit,
           "ratio_here": round(rate / here, 2), "keeps_up_here": rate >= here}
    if given:
        row.update(ratio_given=round(rate / given, 2), keeps_up_given=rate >= given)
    return row


def number(value: float) -> str:
    """1,234.5 for large values, 3 significant digits for small ones (a CPU's B step is a fraction of a clip/s)."""
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def print_table(result: dict) -> None:
    """Loader rate, step consumption and their ratio (! where the loader falls behind), one row per loader."""
    steps = result["steps"]
    given = any("ratio_given" in row for row in result["loaders"])
    header = f"{'loader':<28} {'workers':>7} {'delivers':>18} {'step here':>18} {'loader/step':>11}"
    header += f" {'step given':>18} {'loader/step':>11}" if given else ""
    print("\n" + header + "\n" + "-" * len(header))
    for row in result["loaders"]:
        step, unit = steps[row["loader"].split()[0]], row["unit"]
        line = (f"{row['loader']:<28} {row['num_workers']:>7} {number(row['rate']):>10} {unit:<7} "
                f"{number(step['here']):>10} {unit:<7} {number(row['ratio_here']):>10}"
                f"{' ' if row['keeps_up_here'] else '!'}")
        if "ratio_given" in row:
            line += (f" {number(step['given']):>10} {unit:<7} {number(row['ratio_given']):>10}"
                     f"{' ' if row['keeps_up_given'] else '!'}")
        print(line)
    print("(! = the loader does not keep up with that step)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and presets: check that the script runs")
    parser.add_argument("--tokenizer-clips-per-s", type=float,
                        help="a tokenizer step's consumption measured elsewhere (a GPU)")
    parser.add_argument("--generator-tokens-per-s", type=float,
                        help="a generator step's consumption measured elsewhere (a GPU)")
    parser.add_argument("--step-repeats", type=int, default=1, help="timed training steps after the warm-up one")
    parser.add_argument("--out", default="bench/results/data_speed.json")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(QUICK if args.quick else Settings(), step_repeats=args.step_repeats)
    load = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="data_speed_") as tmp:
        tmp = Path(tmp)
        index = make_dataset(tmp / "videos", num=settings.files, frames=settings.file_frames,
                             size=(settings.size, settings.size), seed=0)
        shards = make_shards(tmp / "shards", settings.shard_clips, settings.grid, settings.codebook)
        sequences = token_sequences(shards)
        loaders = {n: loader_clips_per_s(index, settings, n) for n in settings.worker_counts}
        print("tokenizer loader: " + ", ".join(f"{n} workers {r:.1f}" for n, r in loaders.items()) + " clips/s",
              flush=True)
        reader = reader_tokens_per_s(sequences, settings)
        print(f"generator shard reader: {reader:,.0f} tokens/s", flush=True)
        tokenizer_step = tokenizer_step_clips_per_s(index, settings, tmp / "run")
        print(f"tokenizer {settings.tokenizer_preset} step: {tokenizer_step:.3f} clips/s", flush=True)
        generator_step = generator_step_tokens_per_s(sequences, settings)
        print(f"generator {settings.generator_preset} step: {generator_step:,.0f} tokens/s", flush=True)

    shape = f"{settings.frames}×{settings.size}×{settings.size}"
    rows = [ratio_row(f"tokenizer clips {shape}", n, rate, "clips/s", tokenizer_step, args.tokenizer_clips_per_s)
            for n, rate in loaders.items()]
    rows.append(ratio_row(f"generator shards {'×'.join(map(str, settings.grid))}", 0, reader, "tokens/s",
                          generator_step, args.generator_tokens_per_s))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
              "torch": torch.__version__, "load_avg_before": round(load, 2), "quick": args.quick,
              "settings": dataclasses.asdict(settings),
              "steps": {"tokenizer": {"preset": settings.tokenizer_preset, "batch": settings.tokenizer_batch,
                                      "unit": "clips/s", "here": round(tokenizer_step, 4),
                                      "given": args.tokenizer_clips_per_s},
                        "generator": {"preset": settings.generator_preset, "batch": settings.generator_batch,
                                      "unit": "tokens/s", "here": round(generator_step, 1),
                                      "given": args.generator_tokens_per_s}},
              "loaders": rows}
    print_table(result)
    write_report(result, args.out)


if __name__ == "__main__":
    main()
