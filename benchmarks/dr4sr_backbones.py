"""DR4SR across target models: each backbone on the original data, on DR4SR's data and on the `pattern`
ablation, with paired significance, next to the paper's Table 3 DR4SR rows.

    python benchmarks/dr4sr_backbones.py --dataset beauty --backbones gru4rec sasrec gcegnn cl4srec fmlp \
        [--variants backbone dr4sr pattern] [--seeds 0 1] [--store artifacts] [--out-root runs/grid] \
        [--set regenerate.gamma=0.2] [--dry-run]

Every (backbone, variant, seed) is one `dr4sr run` in its own process, written to
<out-root>/<dataset>/<backbone>/<variant>-seed<S>. A run folder that already holds a finished run
(metrics.json with test metrics) is kept, not retrained, so the grid resumes after an interruption and
runs trained elsewhere (e.g. by backbones_bench.py or on a GPU machine) can be dropped in. Stages shared by
the runs (mining, pre-training, regeneration) are cached in --store. After each backbone its table (seed
means, gains over `backbone`, paired t / Wilcoxon over users) is appended to
benchmarks/results/dr4sr_backbones.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dr4sr.search.grid import finished  # shared with jobs/grid.py: a run folder with test metrics is kept
from dr4sr.search.paper import paper_ndcg20

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dr4sr_backbones.txt"


def run_command(args, backbone: str, variant: str, seed: int, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "dr4sr.cli", "run", "--dataset", args.dataset, "--backbone", backbone,
           "--variant", variant, "--store", args.store, "--out", str(run_dir), "--set", f"train.seed={seed}"]
    for o in args.overrides:
        cmd += ["--set", o]
    return cmd


def paper_line(dataset: str, backbone: str) -> str:
    base, dr4sr, plus = (paper_ndcg20(dataset, backbone, v) for v in ("backbone", "dr4sr", "dr4sr+"))
    if None in (base, dr4sr, plus):
        return f"paper: no Table 3 row for {backbone} on {dataset}"
    return (f"paper N@20: {backbone} {base:.4f} -> DR4SR {dr4sr:.4f} ({dr4sr / base - 1:+.1%}), "
            f"DR4SR+ {plus:.4f} ({plus / base - 1:+.1%})")


def report_backbone(args, backbone: str, root: Path) -> str:
    from dr4sr.report import format_significance
    from dr4sr.report_cli import build_report

    dirs = {v: [str(root / f"{v}-seed{s}") for s in args.seeds] for v in args.variants}
    base, *others = args.variants
    rep = build_report(dirs[base], [(v, dirs[v]) for v in others], baseline_name=base)
    lines = [rep["table"]]
    lines += [format_significance(v, base, sig) for v, sig in rep["significance"].items()]
    for v in args.variants:
        for d in dirs[v]:
            m = json.loads((Path(d) / "metrics.json").read_text())
            lines.append(f"  {Path(d).name}: N@20 {m['test']['ndcg@20']:.4f}, best epoch {m['best_epoch']} of "
                         f"{m['epochs']}, {m['seconds_per_epoch']:.1f} s/epoch, {m.get('train_rows', 0):,} rows")
    lines.append(paper_line(args.dataset, backbone))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--backbones", nargs="+", default=["gru4rec", "sasrec", "gcegnn", "cl4srec", "fmlp"])
    ap.add_argument("--variants", nargs="+", default=["backbone", "dr4sr", "pattern"],
                    help="the first is the baseline of the gains and tests")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--store", default="artifacts", help="artifact store shared by all runs")
    ap.add_argument("--out-root", default="runs/grid")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--dry-run", action="store_true", help="list what would run and what is already done")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    failed = []
    for backbone in args.backbones:
        root = Path(args.out_root) / args.dataset / backbone
        started = time.time()
        for variant in args.variants:
            for seed in args.seeds:
                run_dir = root / f"{variant}-seed{seed}"
                if finished(run_dir):
                    print(f"== {backbone}/{variant}/seed {seed}: done ({run_dir})", flush=True)
                    continue
                cmd = run_command(args, backbone, variant, seed, run_dir)
                print(f"== {backbone}/{variant}/seed {seed}: {' '.join(cmd)}", flush=True)
                if not args.dry_run and subprocess.call(cmd) != 0:
                    failed.append(f"{backbone}/{variant}/seed {seed}")
        if args.dry_run or any(f.startswith(f"{backbone}/") for f in failed):
            continue
        text = report_backbone(args, backbone, root)
        print(text, flush=True)
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
        with open(args.results, "a") as f:
            f.write(f"\n# {args.dataset} / {backbone}, seeds {args.seeds}, reported {stamp} "
                    f"(wall {time.time() - started:.0f} s), overrides {args.overrides or 'none'}, "
                    f"store {args.store}, runs {root}\n{text}\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
