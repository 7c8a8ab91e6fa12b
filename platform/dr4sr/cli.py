"""`dr4sr` command line. Each stage module contributes its subcommand through `register(subparsers)`."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from dr4sr.cli_args import BACKBONE_NAMES, backbone_arg, positive_int  # noqa: F401  (tests read BACKBONE_NAMES here)
from dr4sr.errors import DR4SRError, Terminated

DESCRIPTION = """\
DR4SR: regenerate a sequential-recommendation dataset (mine patterns, pre-train a regenerator,
regenerate the training set) and train any of five backbones on it. Every stage is cached in an
artifact store, so reruns reuse finished work and an interrupted command continues where it stopped.

  dr4sr compare --dataset beauty --backbone sasrec --out runs/cmp     backbone vs DR4SR, with a table
  dr4sr run --dataset beauty --variant dr4sr --out runs/dr4sr         one variant, every stage it needs
  dr4sr train --dataset beauty --backbone gru4rec --out runs/gru      one model on the original data

Data: --dataset NAME reads <data dir>/NAME.txt (--data-dir, else $DR4SR_DATA_DIR, else a verified
download); --dataset PATH reads any file in that format or a CSV/Parquet interaction log.
Add --smoke-test to any command to check the whole path in minutes (2 epochs, not a result)."""
RESUME_HINT = ("rerun the same command to continue: finished stages are reused and an interrupted training "
               "resumes from its last checkpoint")

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the platform never phones home

# modules that add subcommands; a module absent from this build is skipped
COMMAND_MODULES = ("dr4sr.mining.cli", "dr4sr.regen.cli", "dr4sr.pipeline_cli", "dr4sr.report_cli",
                   "dr4sr.cluster", "dr4sr.search.cli", "dr4sr.store_cli",
                   "dr4sr.baselines.cli", "dr4sr.dashboard_cli")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp, or a path (text format, CSV or Parquet)")
    p.add_argument("--data-dir", default=None, help="folder with <name>.txt (default: $DR4SR_DATA_DIR, else download)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    backbone_arg(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.dropout=0.2 (repeatable)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="Ray Train DDP workers (1 = the plain loop in this process, no Ray)")
    p.add_argument("--gpus", action="store_true", help="one GPU per worker (NCCL)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--smoke-test", action="store_true",
                   help="2 epochs, output to OUT-smoke: checks the whole path quickly (an explicit --set wins)")


def cmd_train(args) -> int:
    import dr4sr.baselines.melt  # noqa: F401  (registers MELT with the training loop: --set melt.enabled=true)
    import dr4sr.personalizer  # noqa: F401  (registers DR4SR+ with the training loop: --set personalizer.enabled=true)
    from dr4sr.config import parse_overrides
    from dr4sr.paths import require_writable, smoke_label, smoke_out
    from dr4sr.train.runner import build_run_config, format_metrics, train_stage

    cfg = build_run_config(args.backbone, args.dataset, parse_overrides(args.overrides), args.data_dir, args.smoke_test)
    out = require_writable(smoke_out(args.out, args.smoke_test), "output folder")
    extra = {"smoke_test": smoke_label(cfg.train.max_epochs)} if args.smoke_test else None
    metrics = train_stage(cfg, out, workers=args.workers, gpus=args.gpus, resume=args.resume, extra_metrics=extra)
    print(format_metrics(metrics))
    print(f"wrote {out}/metrics.json, {out}/user_metrics.parquet and {out}/model.pt")
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
    parser = argparse.ArgumentParser(prog="dr4sr", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one backbone on the original training data and test it")
    add_data_args(p)
    add_train_args(p)
    p.set_defaults(func=cmd_train, resume_hint="rerun the same command with --resume to continue from "
                                               "OUT/checkpoints/last.pt")

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


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["DR4SR_VERBOSE"] = "1"  # read where Ray starts (dr4sr.train.ray_train.ensure_ray)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return args.func(args) or 0
    except DR4SRError as exc:
        if args.debug:
            raise
        print(f"dr4sr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\ndr4sr: {what}; {getattr(args, 'resume_hint', RESUME_HINT)}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
