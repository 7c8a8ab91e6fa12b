"""Which ingredient of the paper-era DR4SR recipe carries the gain, SASRec on Beauty.

    python benchmarks/dr4sr_recipe.py --run mem0 paperera-g0 --seeds 0 1   # train what is missing
    python benchmarks/dr4sr_recipe.py --report                                # table of what is finished
    python benchmarks/dr4sr_recipe.py --dry-run                               # what is done / would run

Every (recipe, seed) is one `dr4sr run` process written to <out-root>/<recipe>-seed<S>; a folder that
already holds a finished run is kept (so the script resumes, and runs made elsewhere can be dropped in).
Stages are cached in --store, so e.g. mem0..mem4 share one pre-trained regenerator. The report pairs
every recipe with the baseline recipe on the seeds both have finished: seed means, gains, paired t and
Wilcoxon p over users, training rows by source, and per-seed N@20 / R@20.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from dr4sr_backbones import finished  # a sibling script: this folder is sys.path[0] when the script runs

ALL_MINED = ["--set", "compose.mined=all", "--set", "compose.dedupe=none"]
# name -> (backbone, `dr4sr run` arguments); every recipe not named *-ce trains with the default BCE loss
RECIPES: dict[str, tuple[str, list[str]]] = {
    "backbone": ("sasrec", ["--variant", "backbone"]),
    "pattern-paired": ("sasrec", ["--variant", "pattern", "--set", "compose.mined=paired",
                                  "--set", "compose.dedupe=across"]),  # paired mined + originals, deduplicated
    "pattern-default": ("sasrec", ["--variant", "pattern"]),  # today's default (all mined, concatenated)
    "pattern-paperera": ("sasrec", ["--variant", "pattern", "--preset", "paper-era"]),  # all mined, concatenated
    **{f"mem{k}": ("sasrec", ["--variant", "dr4sr", "--set", f"regenerate.memories=[{k}]", *ALL_MINED])
       for k in range(5)},  # the text-settings regenerator (K=5, 40 epochs), one memory decoded
    "paperera-g0": ("sasrec", ["--variant", "dr4sr", "--preset", "paper-era"]),
    "paperera-g0.1": ("sasrec", ["--variant", "dr4sr", "--preset", "paper-era", "--set", "regenerate.gamma=0.1"]),
    "plus-paperera-g0": ("sasrec", ["--variant", "dr4sr+", "--preset", "paper-era"]),  # DR4SR+ on that data
    # its control: no g_phi, every non-mined row weighted 0.5 (what DR4SR+'s learned weights, 0.506 +- 0.013, amount to)
    "const-paperera-g0": ("sasrec", ["--variant", "dr4sr+", "--preset", "paper-era",
                                     "--set", "personalizer.mode=constant"]),
    # the ablation of Table 4: phi trained jointly with theta on the weighted loss (no bi-level)
    "e2e-paperera-g0": ("sasrec", ["--variant", "dr4sr+", "--preset", "paper-era",
                                   "--set", "personalizer.mode=end-to-end"]),
    # beyond the paper: the personalizer on the pattern data (mined rows fixed at 1, originals re-weighted),
    # and its constant-0.5 control
    "plus-pattern-paperera": ("sasrec", ["--variant", "pattern", "--preset", "paper-era",
                                         "--set", "personalizer.enabled=true"]),
    "const-pattern-paperera": ("sasrec", ["--variant", "pattern", "--preset", "paper-era", "--set",
                                          "personalizer.enabled=true", "--set", "personalizer.mode=constant"]),
    **{f"{b}-{name}": (b, extra) for b in ("gru4rec", "cl4srec") for name, extra in (
        ("backbone", ["--variant", "backbone"]),
        ("paperera-g0", ["--variant", "dr4sr", "--preset", "paper-era"]),
        ("plus-paperera-g0", ["--variant", "dr4sr+", "--preset", "paper-era"]))},
    "ce-backbone": ("sasrec", ["--variant", "backbone", "--set", "train.loss=ce"]),
    "ce-pattern-paperera": ("sasrec", ["--variant", "pattern", "--preset", "paper-era", "--set", "train.loss=ce"]),
    "ce-paperera-g0": ("sasrec", ["--variant", "dr4sr", "--preset", "paper-era", "--set", "train.loss=ce"]),
}
BASELINES = {"gru4rec": "gru4rec-backbone", "cl4srec": "cl4srec-backbone", "ce": "ce-backbone"}  # prefix -> baseline
# a second comparison for the DR4SR+ recipes: against the DR4SR run on the same rows (or DR4SR+ itself)
ALSO_AGAINST = {"plus-paperera-g0": "paperera-g0", "plus-pattern-paperera": "pattern-paperera",
                "const-pattern-paperera": "plus-pattern-paperera",
                "const-paperera-g0": "plus-paperera-g0",
                "e2e-paperera-g0": "plus-paperera-g0", "gru4rec-plus-paperera-g0": "gru4rec-paperera-g0",
                "cl4srec-plus-paperera-g0": "cl4srec-paperera-g0"}


def baseline_of(name: str) -> str:
    return next((b for p, b in BASELINES.items() if name.startswith(p + "-")), "backbone")


def command(args, name: str, seed: int) -> list[str]:
    backbone, extra = RECIPES[name]
    return [sys.executable, "-m", "dr4sr.cli", "run", "--dataset", args.dataset, "--backbone", backbone,
            "--store", args.store, "--out", str(Path(args.out_root) / f"{name}-seed{seed}"),
            "--set", f"train.seed={seed}", *extra]


def describe(run_dir: Path) -> str:
    m = json.loads((run_dir / "metrics.json").read_text())
    rows = m.get("rows_by_source") or {"original": m.get("train_rows", 0)}
    return (f"  {run_dir.name}: N@20 {m['test']['ndcg@20']:.4f} R@20 {m['test']['recall@20']:.4f}, best epoch "
            f"{m['best_epoch']} of {m['epochs']}, {m['seconds_per_epoch']:.1f} s/epoch, rows {rows}")


def report(args) -> str:
    from dr4sr.report import format_significance
    from dr4sr.report_cli import build_report

    root, lines = Path(args.out_root), []
    pairs = [(name, baseline_of(name)) for name in RECIPES] + list(ALSO_AGAINST.items())
    for name, base in pairs:
        if name == base:
            continue
        seeds = [s for s in args.seeds if finished(root / f"{name}-seed{s}") and finished(root / f"{base}-seed{s}")]
        if not seeds:
            continue
        rep = build_report([str(root / f"{base}-seed{s}") for s in seeds],
                           [(name, [str(root / f"{name}-seed{s}") for s in seeds])], baseline_name=base)
        lines.append(f"## {name} vs {base}, seeds {seeds}\n{rep['table']}")
        lines.append(format_significance(name, base, rep["significance"][name]))
        lines += [describe(root / f"{r}-seed{s}") for r in (base, name) for s in seeds]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--run", nargs="+", default=[], choices=list(RECIPES), metavar="RECIPE",
                    help=f"recipes to train where missing: {', '.join(RECIPES)}")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--store", default="artifacts")
    ap.add_argument("--out-root", default="runs/i11")
    ap.add_argument("--report", action="store_true", help="print the table of every finished recipe")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for name in args.run or (list(RECIPES) if args.dry_run else []):
        for seed in args.seeds:
            run_dir = Path(args.out_root) / f"{name}-seed{seed}"
            cmd = command(args, name, seed)
            if finished(run_dir):
                print(f"== {name} seed {seed}: done ({run_dir})", flush=True)
            elif args.dry_run:
                print(f"== {name} seed {seed}: would run {' '.join(cmd)}", flush=True)
            elif subprocess.call(cmd) != 0:
                print(f"{name} seed {seed} failed", file=sys.stderr)
                return 1
    if args.report:
        print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
