"""Benchmark: peak memory of `t2v tokenizer reconstruct` on a 60-frame and a 600-frame 160×96 video.

The videos are ffmpeg's `testsrc2` pattern (through imageio-ffmpeg's bundled ffmpeg). Each reconstruction runs
in its own process; its peak resident memory is read from the kernel (getrusage of that child). The reconstruction
streams through the tokenizer's causal caches, so the 600-frame peak should stay within 1.3× of the 60-frame one.

    python bench/reconstruct_memory.py                          # a randomly initialised tiny tokenizer
    python bench/reconstruct_memory.py --tokenizer runs/shapes-tokenizer-00001
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from t2v.tokenizer.model import VideoTokenizer
from t2v.tokenizer.config import preset

MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def make_testsrc(path: Path, frames: int, size: str = "160x96", rate: int = 25) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={rate}", "-frames:v", str(frames), "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", str(path)], check=True)
    return path


def peak_memory_mib(tokenizer: Path, video: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one `t2v tokenizer reconstruct` process."""
    command = [sys.executable, "-m", "t2v.cli.main", "tokenizer", "reconstruct", str(tokenizer), str(video), str(out)]
    started = time.time()
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    return int(result.stdout.strip()) / 1024, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, help="tokenizer directory (default: a random tiny one)")
    parser.add_argument("--out", default="bench/results", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tokenizer = args.tokenizer or VideoTokenizer(preset("tiny")).save_pretrained(tmp / "tokenizer")
        rows = {}
        for frames in (60, 600):
            video = make_testsrc(tmp / f"testsrc_{frames}.mp4", frames)
            peak, seconds = peak_memory_mib(tokenizer, video, tmp / f"reconstruction_{frames}.mp4")
            rows[frames] = {"peak_rss_mib": round(peak, 1), "seconds": round(seconds, 1)}
    ratio = rows[600]["peak_rss_mib"] / rows[60]["peak_rss_mib"]
    report = {"size": "160x96", "tokenizer": str(args.tokenizer or "random tiny preset"),
              "frames_60": rows[60], "frames_600": rows[600], "ratio_600_over_60": round(ratio, 3), "target": 1.3}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reconstruct_memory.json").write_text(json.dumps(report, indent=2))
    print("| frames | peak RSS (MiB) | seconds |\n|---|---|---|")
    for frames, row in rows.items():
        print(f"| {frames} | {row['peak_rss_mib']} | {row['seconds']} |")
    print(f"\nratio 600/60: {ratio:.3f} (target ≤ 1.3); JSON: {args.out / 'reconstruct_memory.json'}")


if __name__ == "__main__":
    main()
