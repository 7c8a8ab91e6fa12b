"""Target models on a benchmark dataset under the paper's protocol, to early stopping.

Usage: python benchmarks/train_bench.py --dataset beauty --runs sasrec:bce sasrec:ce gru4rec:bce
Each run is a subprocess (clean peak-memory reading); results are appended to --results as a table
next to the paper's rows.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform as stdlib_platform
import resource
import subprocess
import sys
from pathlib import Path

PAPER_N20_R20 = {  # paper Table 3, Beauty, backbone rows
    "gru4rec": (0.0150, 0.0382), "sasrec": (0.0368, 0.0847), "fmlp": (0.0394, None),
    "gcegnn": (0.0384, None), "cl4srec": (0.0441, None),
}


def run_one(dataset: str, backbone: str, loss: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "dr4sr.cli", "train", "--dataset", dataset, "--backbone", backbone,
           "--out", str(out), "--set", f"train.loss={loss}", *sum((["--set", e] for e in extra), [])]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["peak_rss_mb"] = peak_mb
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--runs", nargs="+", default=["sasrec:bce", "sasrec:ce", "gru4rec:bce"])
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--results", default="benchmarks/results/train.txt")
    ap.add_argument("--set", dest="extra", action="append", default=[])
    args = ap.parse_args()
    lines = []
    for spec in args.runs:
        backbone, loss = spec.split(":")
        m = run_one(args.dataset, backbone, loss, Path(args.out) / f"{args.dataset}-{backbone}-{loss}", args.extra)
        t = m["test"]
        paper = (PAPER_N20_R20.get(backbone, (None, None)) if args.dataset == "beauty" and loss == "bce"
                 else (None, None))
        fmt = lambda v: f"{v:.4f}" if v is not None else "  -   "  # noqa: E731
        line = (f"{args.dataset:7} {backbone:8} {loss:4} | R@10 {t['recall@10']:.4f} R@20 {t['recall@20']:.4f} "
                f"N@10 {t['ndcg@10']:.4f} N@20 {t['ndcg@20']:.4f} | paper N@20 {fmt(paper[0])} R@20 {fmt(paper[1])} | "
                f"best epoch {m['best_epoch']}/{m['epochs']} | {m['seconds_per_epoch']:.2f} s/epoch train | "
                f"{m['eval_seconds_per_epoch']:.2f} s eval (all users) | peak RSS {m['peak_rss_mb']:.0f} MB")
        print(line, flush=True)
        lines.append(line)
    header = (f"# {datetime.date.today()} | {stdlib_platform.node()} | {os.cpu_count()} CPU cores, no GPU | "
              f"torch CPU | command: python benchmarks/train_bench.py {' '.join(sys.argv[1:])}")
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("\n".join([header, *lines]) + "\n\n")


if __name__ == "__main__":
    main()
