"""CLI for `dr4sr run` (one variant) and `dr4sr compare` (backbone vs DR4SR table with gains)."""
from __future__ import annotations

import argparse
import json

from dr4sr.cli_args import backbone_arg, positive_int, preset_arg
from dr4sr.config import parse_overrides
from dr4sr.paths import require_folders, smoke_label, smoke_out
from dr4sr.pipeline import COMPOSITIONS, VARIANTS, RunRequest, prepare_run, run_variant


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp or a path")
    p.add_argument("--data-dir", default=None, help="folder with <name>.txt (default: $DR4SR_DATA_DIR, else download)")
    backbone_arg(p)
    p.add_argument("--composition", default="regenerated+mined+original", choices=COMPOSITIONS,
                   help="what the target model trains on (validation/test stay the original targets)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data/model/train keys for the target model; mine/init/regen/pretrain/regenerate "
                        "keys for the regeneration pipeline (e.g. --set regenerate.gamma=0.3)")
    preset_arg(p)
    p.add_argument("--workers", type=positive_int, default=1,
                   help="1 (default) runs every stage in this process without Ray; N > 1 uses Ray")
    p.add_argument("--gpus", action="store_true")
    p.add_argument("--store", default=None, help="artifact store (default $DR4SR_ARTIFACTS or ./artifacts)")
    p.add_argument("--out", required=True, help="output folder (a rerun of the same command resumes)")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything, print the plan (each stage's artifact id, cached or to run), run nothing")
    p.add_argument("--smoke-test", action="store_true",
                   help="2 epochs per training stage (DR4SR+: 1 warm-up epoch, then an upper step after every "
                        "lower one), output to OUT-smoke; an explicit --set wins")


def _request(args, variant: str) -> RunRequest:
    return RunRequest(args.dataset, args.backbone, variant, args.composition, parse_overrides(args.overrides),
                      args.data_dir, args.workers, args.gpus, args.smoke_test, args.store, args.preset)


def cmd_run(args) -> int:
    from dr4sr.plan import format_plan
    from dr4sr.train.runner import format_metrics

    require_folders(store=args.store)
    out = smoke_out(args.out, args.smoke_test)
    req = _request(args, args.variant)
    prepared = prepare_run(req, out)
    if args.dry_run:
        print(format_plan(f"{args.variant} with {args.backbone} on {args.dataset} -> {out} (dry run)", prepared.plan,
                          prepared.store, ids=True))
        return 0
    metrics = run_variant(req, out, prepared=prepared)
    print(format_metrics(metrics))
    print(f"wrote {out}/metrics.json, {out}/user_metrics.parquet and {out}/model.pt")
    return 0


def cmd_compare(args) -> int:
    from dr4sr.plan import format_plan, plan_graphs, watch
    from dr4sr.report import format_significance
    from dr4sr.report_cli import build_report

    require_folders(store=args.store)
    out = smoke_out(args.out, args.smoke_test)
    runs = []
    for variant in args.variants:
        for seed in args.seeds:
            run_dir = out / f"{variant}-seed{seed}"
            prepared = prepare_run(_request(args, variant), run_dir, seed)  # every check before any work
            runs.append((variant, seed, run_dir, prepared))
    store = runs[0][3].store
    plan = plan_graphs([r[3].graph for r in runs], store, runs[0][3].splits.fingerprint)  # merged by id
    print(format_plan(f"compare {' vs '.join(args.variants)}, {args.backbone} on {args.dataset}, seeds "
                      f"{args.seeds} -> {out}{' (dry run)' if args.dry_run else ''}", plan, store, ids=args.dry_run),
          flush=True)
    if args.dry_run:
        return 0
    events = watch(plan, print)
    dirs: dict[str, list[str]] = {v: [] for v in args.variants}
    for variant, seed, run_dir, prepared in runs:
        print(f"=== {variant}, seed {seed} -> {run_dir}", flush=True)
        run_variant(_request(args, variant), run_dir, seed=seed, show_plan=False, prepared=prepared, events=events)
        dirs[variant].append(str(run_dir))
    base, *others = args.variants
    rep = build_report(dirs[base], [(v, dirs[v]) for v in others], baseline_name=base)
    summary = {"dataset": args.dataset, "backbone": args.backbone, "seeds": args.seeds,
               "test": rep["test"], "significance": rep["significance"]}
    table = rep["table"]
    if args.smoke_test:
        label = smoke_label(runs[0][3].cfg.train.max_epochs)
        summary = {"note": label, **summary}
        table = f"{label}\n{table}"
    (out / "compare.json").write_text(json.dumps(summary, indent=2))
    (out / "compare.md").write_text(table + "\n")
    print(f"\n{args.backbone} on {args.dataset}, test metrics (mean of seeds {args.seeds}):\n{table}")
    for v, sig in summary["significance"].items():
        print(format_significance(v, base, sig))
    print(f"wrote {out}/compare.md, {out}/compare.json and the run folders "
          f"{', '.join(str(d) for _, _, d, _ in runs)}")
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
