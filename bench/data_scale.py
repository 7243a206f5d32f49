"""Benchmark: the training data pipeline at WebVid-10M scale. Does its memory stay flat as the index grows?

(a) peak RSS (VmHWM, each case in a fresh subprocess) of building the training data, for synthetic indexes of
    `--sizes` rows (WebVid-like rows: a path, a 60–200 character caption, split, fps, duration, size; no file is
    read while the datasets are built):
    - `import`: python + torch + t2v, the floor under every case;
    - `tokenizer datasets`: the tokenizer trainer's three ClipDatasets (train, eval, image; 4 aspect buckets) over
      the video index, whose columns were built before (a separate case, `columns build`, measures that pass);
    - `generator sequences`: ShardReader + trained_tables + TokenSequences over token shards of as many clips
      (synthetic codes), their columns written with the shards;
    - `read_index` (the old way: one dict per row), for comparison.
    The largest size passes when its peak is within 1.2× of the smallest's (`within_1_2x`).
(b) clips/s of reading `--clips` small real clips (shapes, 17 frames at 64×64) once, in order, with 2 DataLoader
    workers: one file per clip (ClipDataset over the index), the packed directory read as an index (ClipDataset,
    each clip's bytes from its tar member), and the tar shards streamed (StreamingClips). After the first item.

    python bench/data_scale.py                        # 10,000 and 1,000,000 rows, 300 clips: ~10 min on 2 cores
    python bench/data_scale.py --quick                # tiny sizes, cases in forked children: checks the script
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from report import write_report  # bench/ is the script's directory, so on sys.path

RATIO = 1.2
ASPECTS = [(64, 64), (48, 64), (36, 64), (64, 36)]  # (H, W) buckets: 1:1, 4:3, 16:9, 9:16
WORDS = ("a red circle moves slowly left across the frame while the camera pans over green hills at sunset and a "
         "small dog runs along the beach people walk in a busy street aerial view of the city at night").split()


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# 1. Synthetic data ------------------------------------------------------------------------------------------------
def caption(rng: np.random.Generator) -> str:
    return " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(12, 36))))


def write_video_index(path: Path, rows: int) -> Path:
    """A WebVid-like index.jsonl of `rows` rows (files that do not exist: nothing reads them here)."""
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as file:
        for i in range(rows):
            h, w = ASPECTS[i % len(ASPECTS)]
            row = {"path": f"videos/{i // 1000:05d}/{i:09d}.mp4", "caption": caption(rng),
                   "split": "val" if i % 100 == 0 else "train", "fps": 25.0, "duration": 12.5,
                   "size": [h * 5, w * 5], "start": 0.0, "end": 10.0}
            file.write(json.dumps(row) + "\n")
    return path


def write_token_shards(directory: Path, rows: int) -> Path:
    """Token shards of `rows` clips of random 2×4×4 codes at two latent grids."""
    from t2v.tokenizer.shards import ShardWriter

    rng = np.random.default_rng(0)
    writer = ShardWriter(directory, 1000)
    for i in range(rows):
        writer.add(rng.integers(0, 1000, (2, 4, 4 + 2 * (i % 2))), {
            "caption": caption(rng), "split": "val" if i % 100 == 0 else "train", "fps": 8.0,
            "path": f"/data/videos/{i:09d}.mp4"})
    return writer.close({})


# 2. The measured cases (each run in its own process: `--case NAME --data PATH`) -------------------------------
def case_tokenizer_datasets(index: Path) -> dict:
    from t2v.tokenizer.data import ClipDataset

    common = dict(size=(64, 64), buckets=ASPECTS, fps=8.0)
    train = ClipDataset(index, num_frames=17, split="train", crop="random", **common)
    held = ClipDataset(index, num_frames=17, split="val", crop="center", **common)
    image = ClipDataset(index, num_frames=1, split="train", crop="random", **common)
    return {"items": len(train) + len(held) + len(image)}


def case_columns_build(index: Path) -> dict:
    from t2v.tokenizer.index import VideoIndex

    return {"items": len(VideoIndex(index))}


def case_read_index(index: Path) -> dict:
    from t2v.tokenizer.index import read_index

    return {"items": len(read_index(index))}


def case_generator_sequences(shards: Path) -> dict:
    from t2v.generator.config import preset
    from t2v.generator.text import TextTokenizer
    from t2v.generator.data import TokenSequences
    from t2v.generator.train import trained_tables
    from t2v.tokenizer.shards import ShardReader

    text = TextTokenizer.train([" ".join(WORDS)] * 4, vocab_size=64, max_len=16)
    reader = ShardReader.open(shards)
    sizes, rates = trained_tables(reader, "train")
    vocab = preset("tiny", text_size=text.size, max_text_len=16, codebook_size=1000, sizes=sizes, rates=rates).vocab
    train = TokenSequences(reader, text, vocab, split="train", caption_dropout=0.1)
    held = TokenSequences(reader, text, vocab, split="val")
    train[0]
    return {"items": len(train) + len(held)}


def case_import(_: Path) -> dict:
    import t2v.generator.train  # noqa: F401 - every module the other cases import
    import t2v.tokenizer.data  # noqa: F401

    return {"items": 0}


CASES = {"import": case_import, "columns build": case_columns_build, "tokenizer datasets": case_tokenizer_datasets,
         "generator sequences": case_generator_sequences, "read_index": case_read_index}


def run_case(case: str, data: Path) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    result = CASES[case](data)
    return {**result, "seconds": round(time.perf_counter() - start, 2), "peak_rss_mb": peak_rss_mb()}


def measure_forked(case: str, data: Path) -> dict:
    """Run `case` in a child forked from this process (which has imported torch and t2v already): quick, and its
    peak includes what the child inherits; for checking the script, not for figures."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            os.write(write, json.dumps(run_case(case, data)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    return json.loads(text)


def measure(case: str, data: Path) -> dict:
    """Run `case` on `data` in a fresh interpreter; its peak RSS and seconds."""
    command = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--data", str(data)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {case!r} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# 3. Loader throughput -----------------------------------------------------------------------------------------------
def clips_per_s(loader) -> tuple[float, int]:
    items = iter(loader)
    next(items)
    start, count = time.perf_counter(), 0
    for _ in items:
        count += 1
    return count / (time.perf_counter() - start), count + 1


def loader_rates(directory: Path, clips: int, workers: int) -> list[dict]:
    from t2v.recipes.shapes.dataset import make_dataset
    from t2v.tokenizer.data import ClipDataset, StreamingClips, init_worker
    from t2v.tokenizer.packed import pack

    index = make_dataset(directory / "shapes", num=clips, frames=17, size=(64, 64), seed=0)
    packed = pack(index, directory / "packed", max_shard_bytes=max(clips * 40_000 // 8, 100_000)).out_dir
    options = dict(batch_size=None, num_workers=workers, worker_init_fn=init_worker if workers else None)
    rows = []
    for name, dataset in [("file per clip (ClipDataset, index.jsonl)", ClipDataset(index, num_frames=17,
                                                                                   size=(64, 64), crop="center")),
                          ("packed, as an index (ClipDataset)", ClipDataset(packed, num_frames=17, size=(64, 64),
                                                                            crop="center")),
                          ("packed, streamed (StreamingClips)", StreamingClips(packed, num_frames=17, size=(64, 64),
                                                                               crop="center"))]:
        rate, count = clips_per_s(torch.utils.data.DataLoader(dataset, **options))
        rows.append({"loader": name, "clips": count, "workers": workers, "clips_per_s": round(rate, 1)})
        print(f"{name}: {rate:.1f} clips/s", flush=True)
    return rows


def print_table(result: dict) -> None:
    sizes = result["sizes"]
    print(f"\npeak RSS, MB ({result['machine']})")
    print(f"{'case':<22}" + "".join(f"{size:>14,} rows" for size in sizes) + "   ratio")
    for row in result["memory"]:
        peaks = [row["peak_rss_mb"][str(size)] for size in sizes]
        mark = "" if row["within_1_2x"] or row["case"] == "read_index" else "  !"
        print(f"{row['case']:<22}" + "".join(f"{peak:>19,.0f}" for peak in peaks) + f"   {row['ratio']:.2f}{mark}")
    print(f"\nreading {result['loaders'][0]['clips']} clips once ({result['loaders'][0]['workers']} workers)")
    for row in result["loaders"]:
        print(f"  {row['loader']:<44} {row['clips_per_s']:>8.1f} clips/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the script runs")
    parser.add_argument("--sizes", type=int, nargs="+", help="index sizes in rows (default 10000 1000000)")
    parser.add_argument("--clips", type=int, help="real clips for the loader rates (default 300)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the loader rates")
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)  # one measured case (internal)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench/results/data_scale.json")
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.data)))
        return
    sizes = args.sizes or ([200, 2000] if args.quick else [10_000, 1_000_000])
    clips = args.clips or (8 if args.quick else 300)
    load = os.getloadavg()[0]
    if args.quick:
        import t2v.generator.train  # noqa: F401 - what the forked cases import, imported once here
        import t2v.tokenizer.data  # noqa: F401
    memory: dict[str, dict] = {case: {} for case in CASES}
    seconds: dict[str, dict] = {case: {} for case in CASES}
    with tempfile.TemporaryDirectory(prefix="data_scale_") as tmp:
        tmp = Path(tmp)
        for size in sizes:
            folder = tmp / str(size)
            folder.mkdir()
            started = time.perf_counter()
            index = write_video_index(folder / "index.jsonl", size)
            shards = write_token_shards(folder / "tokens", size)
            print(f"{size:,} rows: synthetic index and shards in {time.perf_counter() - started:.0f} s", flush=True)
            for case in CASES:  # "columns build" before "tokenizer datasets": it builds the cache they open
                data = shards if case == "generator sequences" else index
                measured = measure_forked(case, data) if args.quick else measure(case, data)
                memory[case][str(size)], seconds[case][str(size)] = measured["peak_rss_mb"], measured["seconds"]
                print(f"  {case}: {measured['peak_rss_mb']:,.0f} MB peak, {measured['seconds']:.1f} s", flush=True)
        loaders = loader_rates(tmp, clips, args.workers)
    small, large = str(sizes[0]), str(sizes[-1])
    rows = [{"case": case, "peak_rss_mb": {k: round(v, 1) for k, v in memory[case].items()},
             "seconds": seconds[case], "ratio": round(memory[case][large] / memory[case][small], 3),
             "within_1_2x": memory[case][large] <= RATIO * memory[case][small]} for case in CASES]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
              "torch": torch.__version__, "load_avg_before": round(load, 2), "quick": args.quick, "sizes": sizes,
              "memory": rows, "loaders": loaders,
              "pipeline_within_1_2x": all(row["within_1_2x"] for row in rows
                                          if row["case"] in ("tokenizer datasets", "generator sequences"))}
    print_table(result)
    write_report(result, args.out)


if __name__ == "__main__":
    main()
