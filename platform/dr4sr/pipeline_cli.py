"""CLI for `dr4sr run` (one variant) and `dr4sr compare` (backbone vs DR4SR table with gains)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dr4sr.config import parse_overrides
from dr4sr.pipeline import COMPOSITIONS, VARIANTS, RunRequest, run_variant


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp or a path")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--backbone", default="sasrec")
    p.add_argument("--composition", default="regenerated+mined+original", choices=COMPOSITIONS,
                   help="what the target model trains on (validation/test stay the original targets)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data/model/train keys for the target model; mine/init/regen/pretrain/regenerate "
                        "keys for the regeneration pipeline (e.g. --set regenerate.gamma=0.3)")
    p.add_argument("--preset", default=None,
                   help="a named preset (platform/dr4sr/configs/presets/, e.g. paper-era) or a YAML path, under --set")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpus", action="store_true")
    p.add_argument("--store", default=None, help="artifact store (default $DR4SR_ARTIFACTS or ./artifacts)")
    p.add_argument("--out", required=True)
    p.add_argument("--smoke-test", action="store_true")


def _request(args, variant: str) -> RunRequest:
    return RunRequest(args.dataset, args.backbone, variant, args.composition, parse_overrides(args.overrides),
                      args.data_dir, args.workers, args.gpus, args.smoke_test, args.store, args.preset)


def cmd_run(args) -> int:
    from dr4sr.train.runner import format_metrics

    metrics = run_variant(_request(args, args.variant), args.out)
    print(format_metrics(metrics))
    return 0


def cmd_compare(args) -> int:
    from dr4sr.report import format_significance
    from dr4sr.report_cli import build_report

    out = Path(args.out)
    dirs: dict[str, list[str]] = {v: [] for v in args.variants}
    for variant in args.variants:
        for seed in args.seeds:
            run_dir = out / f"{variant}-seed{seed}"
            print(f"=== {variant}, seed {seed} -> {run_dir}", flush=True)
            run_variant(_request(args, variant), run_dir, seed=seed)
            dirs[variant].append(str(run_dir))
    base, *others = args.variants
    rep = build_report(dirs[base], [(v, dirs[v]) for v in others], baseline_name=base)
    summary = {"dataset": args.dataset, "backbone": args.backbone, "seeds": args.seeds,
               "test": rep["test"], "significance": rep["significance"]}
    (out / "compare.json").write_text(json.dumps(summary, indent=2))
    (out / "compare.md").write_text(rep["table"] + "\n")
    print(f"\n{args.backbone} on {args.dataset}, test metrics (mean of seeds {args.seeds}):\n{rep['table']}")
    for v, sig in summary["significance"].items():
        print(format_significance(v, base, sig))
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="train a backbone on a variant's data, running every stage it needs")
    _common(p)
    p.add_argument("--variant", default="dr4sr", choices=VARIANTS)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("compare", help="backbone vs DR4SR (and more variants): table, gains, significance")
    _common(p)
    p.add_argument("--variants", nargs="+", default=["backbone", "dr4sr"], choices=VARIANTS,
                   help="the first one is the baseline")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.set_defaults(func=cmd_compare)
