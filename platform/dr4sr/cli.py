"""`dr4sr` command line. Each stage module contributes its subcommand through `register(subparsers)`."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from dr4sr.errors import DR4SRError

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the platform never phones home

# modules that add subcommands; a module absent from this build is skipped
COMMAND_MODULES = ("dr4sr.mining.cli", "dr4sr.regen.cli", "dr4sr.pipeline_cli", "dr4sr.report_cli", "dr4sr.search.cli")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp, or a path (text format, CSV or Parquet)")
    p.add_argument("--data-dir", default=None, help="folder with <name>.txt (default: $DR4SR_DATA_DIR, else download)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="sasrec")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.dropout=0.2 (repeatable)")
    p.add_argument("--workers", type=int, default=1, help="Ray Train DDP workers (1 = plain local loop)")
    p.add_argument("--gpus", action="store_true", help="one GPU per worker (NCCL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--smoke-test", action="store_true", help="2 epochs: checks the whole path quickly")


def cmd_train(args) -> int:
    from dr4sr.config import parse_overrides
    from dr4sr.train.runner import build_run_config, format_metrics, train_stage

    cfg = build_run_config(args.backbone, args.dataset, parse_overrides(args.overrides), args.data_dir, args.smoke_test)
    metrics = train_stage(cfg, args.out, workers=args.workers, gpus=args.gpus, resume=args.resume)
    print(format_metrics(metrics))
    print(f"wrote {args.out}/metrics.json and {args.out}/user_metrics.parquet")
    return 0


def cmd_stats(args) -> int:
    from dr4sr.data.datasets import load_dataset
    from dr4sr.data.stats import format_stats, sequence_stats

    data = load_dataset(args.dataset, args.data_dir, args.k_core)
    stats = sequence_stats(data.sequences, num_items=data.num_items)
    stats["dropped_users"] = data.dropped_users
    print(format_stats(f"{args.dataset} ({data.source})", stats))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dr4sr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one backbone on the original training data and test it")
    add_data_args(p)
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("stats", help="print Table-1 statistics of a dataset")
    add_data_args(p)
    p.add_argument("--k-core", type=int, default=5, help="k-core filter for raw interaction logs")
    p.set_defaults(func=cmd_stats)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except DR4SRError as exc:
        print(f"dr4sr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
