"""The cost of a full Table-3 grid, estimated from a grid folder's finished SASRec runs.

Measured per dataset (from each run's metrics.json): the data chain a regenerating variant needs once
per dataset (mining, the regenerator's init, pre-training, regeneration: `data_seconds`, shared by every
seed, variant and target model), and per variant the target model's training, epochs x (train + eval
seconds per epoch). Epoch counts are used instead of `wall_seconds` because a resumed run's wall time
covers only its last process.

Estimated: the other target models' training as SASRec's on the same rows times a per-epoch cost ratio
(--ratio; defaults are the ratios of the five backbones' Beauty smoke runs in benchmarks/results/speed.txt),
with SASRec's epoch counts. A GPU figure needs --gpu-speedup (how many times faster one training epoch
runs on the GPU than on one CPU thread), an assumption unless it was measured.

  python benchmarks/grid_estimate.py --grid /work/grid-out
  python benchmarks/grid_estimate.py --grid /work/grid-out --seeds 3 --gpu-speedup 10
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# per-epoch training cost against SASRec, from the five backbones' 2-epoch smoke runs on Beauty
# (benchmarks/results/speed.txt: sasrec 1.55 s, gru4rec 4.88, fmlp 21.25, gcegnn 2.59, cl4srec 3.62)
# bert4rec: 14.4 s per Beauty epoch against SASRec's 11.0-16.1 s on the same loaded machine
# (benchmarks/results/bert4rec_beauty.txt)
DEFAULT_RATIOS = {"sasrec": 1.0, "gru4rec": 3.15, "fmlp": 13.7, "gcegnn": 1.67, "cl4srec": 2.34, "bert4rec": 1.1}
PAPER_MODELS = ["sasrec", "gru4rec", "fmlp", "gcegnn", "cl4srec"]  # Table 3's target models
REGENERATING = ("dr4sr", "dr4sr+", "constant")


def read_runs(grid: Path) -> list[dict]:
    runs = []
    for path in sorted(grid.glob("*/sasrec/*-seed*/metrics.json")):
        m = json.loads(path.read_text())
        variant = path.parent.name.rsplit("-seed", 1)[0]
        train = sum(float(h.get("seconds", 0.0)) for h in m["history"])
        runs.append({"dataset": path.parts[-4], "variant": variant, "train": train,
                     "data": float(m.get("data_seconds") or 0.0), "epochs": m["epochs"]})
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", required=True, help="a grid folder with finished SASRec runs")
    ap.add_argument("--variants", nargs="+", default=["backbone", "pattern", "dr4sr", "dr4sr+"])
    ap.add_argument("--models", nargs="+", default=PAPER_MODELS)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--ratio", nargs="*", default=[], metavar="MODEL=X", help="per-epoch cost against SASRec")
    ap.add_argument("--gpu-speedup", type=float, default=None)
    args = ap.parse_args(argv)
    ratios = dict(DEFAULT_RATIOS)
    for item in args.ratio:
        name, _, value = item.partition("=")
        try:
            ratios[name] = float(value)
        except ValueError:
            print(f"--ratio {item!r}: expected MODEL=NUMBER", file=sys.stderr)
            return 2
    missing = [m for m in args.models if m not in ratios]
    if missing:
        print(f"--models {missing[0]}: no per-epoch cost ratio; give one with --ratio {missing[0]}=X", file=sys.stderr)
        return 2
    runs = read_runs(Path(args.grid))
    if not runs:
        print(f"--grid {args.grid}: no finished SASRec runs (*/sasrec/*-seed*/metrics.json)", file=sys.stderr)
        return 2

    train = defaultdict(list)
    data = defaultdict(float)
    for r in runs:
        train[r["dataset"], r["variant"]].append(r["train"])
        data[r["dataset"]] += r["data"]
    datasets = sorted(data)
    print(f"measured (SASRec, {len(runs)} finished runs in {args.grid}); hours, one thread each")
    print(f"{'dataset':8} {'data chain':>10} " + " ".join(f"{v:>9}" for v in args.variants))
    total, gaps = 0.0, []
    for d in datasets:
        cells = []
        for v in args.variants:
            t = train.get((d, v))
            cells.append(f"{statistics.mean(t) / 3600:9.2f}" if t else f"{'-':>9}")
            if not t:
                gaps.append(f"{d}/{v}")
        print(f"{d:8} {data[d] / 3600:10.2f} " + " ".join(cells))

    # the estimate: the data chain once per dataset (if a regenerating variant is asked for), then every
    # model x variant x seed as SASRec's mean training on those rows x the model's ratio
    regen = any(v in REGENERATING for v in args.variants)
    per_model = defaultdict(float)
    for d in datasets:
        total += data[d] if regen else 0.0
        for v in args.variants:
            t = train.get((d, v))
            if not t:
                continue
            for m in args.models:
                per_model[m] += statistics.mean(t) * ratios[m] * args.seeds
    total += sum(per_model.values())
    n = len(args.models) * len(datasets) * len(args.variants) * args.seeds
    print(f"\nestimate: {len(args.models)} models x {len(datasets)} datasets x {len(args.variants)} variants x "
          f"{args.seeds} seeds = {n} runs")
    for m in args.models:
        print(f"  {m:8} x{ratios[m]:<5} {per_model[m] / 3600:8.1f} core-hours of training")
    data_h = sum(data.values()) / 3600 if regen else 0.0
    print(f"  data chains (once per dataset) {data_h:.1f} core-hours")
    print(f"  total {total / 3600:.1f} core-hours = {total / 3600 / args.concurrent:.1f} h wall at "
          f"{args.concurrent} runs at once")
    if args.gpu_speedup:
        gpu = total / args.gpu_speedup
        print(f"  one GPU, runs one after another, ASSUMING {args.gpu_speedup:g}x per epoch: {gpu / 3600:.1f} h")
    if gaps:
        print(f"  not in the estimate (no finished SASRec run): {', '.join(gaps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
