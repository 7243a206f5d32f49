"""Benchmark: peak memory and time of the generator's training loss, full logits against the chunked loss.

`full`: logits = hidden @ weight.T in the compute dtype, then `F.cross_entropy(logits.float(), …)` (what the
trainer did before generator/loss.py); `chunked`: `linear_cross_entropy` (a chunk of ids at a time, gradients
computed in the forward). Each case runs forward + backward once in a fresh Python process (after a warm-up at a
tenth of the size) and reports its peak resident memory above the process's state before the loss (VmHWM − VmRSS
on Linux) and the wall time. Defaults: 8,192 ids (a B-preset micro-batch of 16 × 512), hidden 768, 64,000 codes,
fp32 inputs. Prints a table and writes JSON.

    python bench/loss_memory.py
    python bench/loss_memory.py --ids 256 --codes 1000 --hidden 64     # the smoke run of the tests
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from report import write_report  # bench/ is the script's directory, so on sys.path

CASE = """
import json, sys, time
import torch, torch.nn.functional as F
from t2v.generator.loss import linear_cross_entropy

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0

method, ids, hidden, codes, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
dtype = getattr(torch, dtype)
torch.manual_seed(0)

def run(n):
    h = torch.randn(n, hidden, dtype=dtype, requires_grad=True)
    w = (torch.randn(codes, hidden) * 0.02).to(dtype).requires_grad_()
    labels = torch.randint(0, codes, (n,))
    if method == "full":
        loss = F.cross_entropy((h @ w.T).float(), labels)
    else:
        loss = linear_cross_entropy(h, w, labels)
    loss.backward()
    return float(loss.detach())

run(max(ids // 10, 1))
base = status("VmRSS:")
start = time.perf_counter()
loss = run(ids)
seconds = time.perf_counter() - start
print(json.dumps({"peak_mib": (status("VmHWM:") - base) / 2**20, "seconds": seconds, "loss": loss}))
"""


def measure(method: str, ids: int, hidden: int, codes: int, dtype: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, method, str(ids), str(hidden), str(codes), dtype],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{method} {dtype} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--codes", type=int, default=64000)
    parser.add_argument("--dtypes", nargs="+", default=["float32"],
                        help="input dtypes (bfloat16 matmuls are slow on CPUs without bf16 units)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/loss_memory.json"))
    args = parser.parse_args(argv)
    logits_mib = args.ids * args.codes * 4 / 2**20
    rows = [{"method": method, "dtype": dtype, **measure(method, args.ids, args.hidden, args.codes, dtype)}
            for dtype in args.dtypes for method in ("full", "chunked")]
    print(f"{args.ids:,} ids × {args.codes:,} codes (fp32 logits: {logits_mib:,.0f} MiB), hidden {args.hidden}\n")
    print("| method | dtype | peak above the inputs (MiB) | seconds | loss |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['dtype']} | {row['peak_mib']:,.0f} | {row['seconds']:.2f} | "
              f"{row['loss']:.4f} |")
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
              "ids": args.ids, "hidden": args.hidden, "codes": args.codes, "fp32_logits_mib": round(logits_mib, 1),
              "rows": rows}
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
