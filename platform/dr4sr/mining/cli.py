"""`dr4sr mine`: mine patterns and (user, pattern) pairs for one dataset into the artifact store.

Wire-up: the main CLI calls `register(subparsers)`; the parsed namespace carries `func=run_mine_cli`.
"""
from __future__ import annotations

import argparse
import json
import time

from dr4sr.artifacts import ArtifactStore, default_root
from dr4sr.cli_args import positive_int, preset_arg
from dr4sr.mining.engines import ENGINES
from dr4sr.mining.stage import MineConfig

# flag -> key of the `mine` config section; a flag left out keeps the resolved value
FLAGS = {"alpha": "alpha", "beta": "beta", "max_pattern_len": "max_pattern_len",
         "max_pairs": "max_pairs_per_sequence", "seed": "seed"}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "mine", help="mine frequent span-constrained patterns and pre-training pairs",
        description="Mine patterns (span <= alpha, support >= beta) from the training sequences and "
                    "pair each user with up to --max-pairs of the patterns it contains.")
    p.add_argument("--dataset", required=True, help="benchmark name (beauty, sports, toys, yelp) or a file path")
    p.add_argument("--data-dir", default=None, help="folder holding <name>.txt (default: $DR4SR_DATA_DIR or cache)")
    p.add_argument("--alpha", type=int, default=None,
                   help="maximum span in positions (default: per dataset, as `dr4sr run`: 5 Beauty, 10 others)")
    p.add_argument("--beta", type=int, default=None, help="minimum support in sequences (default 2)")
    p.add_argument("--max-pattern-len", type=int, default=None, help="cap on pattern length (default: alpha)")
    p.add_argument("--max-pairs", type=int, default=None, help="pairs kept per user (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed of the per-user pair draw (default 0)")
    preset_arg(p)
    p.add_argument("--max-len", type=int, default=50, help="sequence truncation of the splits (default 50)")
    p.add_argument("--engine", choices=ENGINES, default="native", help="native (fast) or seq2pat (reference)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="1 (default) mines in this process without Ray; N > 1: N Ray Data blocks (native engine)")
    p.add_argument("--out", default=None, help="artifact store root (default $DR4SR_ARTIFACTS or ./artifacts)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_mine_cli)
    return p


def mine_config(args: argparse.Namespace) -> MineConfig:
    """The `mine` section as `dr4sr run` resolves it for this dataset and preset, with the flags given on top."""
    from dr4sr.regen.config import build_regen_config

    flags = {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag) is not None}
    return MineConfig.from_dict(dict(build_regen_config({"mine": flags}, args.dataset, args.preset).mine))


def run_mine_cli(args: argparse.Namespace) -> int:
    from dr4sr.data.datasets import load_dataset
    from dr4sr.data.splits import leave_one_out
    from dr4sr.paths import require_writable

    cfg = mine_config(args)
    store = ArtifactStore(args.out if args.out is not None else default_root())
    require_writable(store.root, "artifact store", "pass --out DIR or set $DR4SR_ARTIFACTS")
    started = time.perf_counter()
    splits = leave_one_out(load_dataset(args.dataset, args.data_dir), max_len=args.max_len)
    from dr4sr.stages import Runtime, StageGraph, execute, stage_id
    from dr4sr.stages.kinds import MineStage

    stage = MineStage(splits, cfg, Runtime(args.workers), args.engine)
    reused = store.get("mine", stage_id(stage)) is not None
    if args.workers > 1 and not reused:  # a cached artifact needs no Ray
        from dr4sr.mining.distributed import ensure_ray
        ensure_ray(quiet=True)  # keep the summary readable
    artifact = execute(StageGraph(stage), store, log=lambda *_: None)[stage]
    stats = json.loads((artifact.path / "stats.json").read_text())
    summary = {
        "dataset": args.dataset, "alpha": cfg.alpha, "beta": cfg.beta, "patterns": stats["num_patterns"],
        "pairs": stats["num_pairs"], "users_without_pairs": stats["users_without_pairs"],
        "users": stats["num_sequences"], "seconds": round(time.perf_counter() - started, 2),
        "reused": reused, "artifact": str(artifact.path),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"mine {args.dataset}: alpha={cfg.alpha} beta={cfg.beta} engine={stats['engine']}"
              f"{' (reused artifact)' if reused else ''}")
        print(f"  patterns            {summary['patterns']:,}")
        print(f"  pairs               {summary['pairs']:,}")
        print(f"  users without pairs {summary['users_without_pairs']:,} of {summary['users']:,}")
        print(f"  seconds             {summary['seconds']}")
        print(f"  artifact            {summary['artifact']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m dr4sr.mining.cli mine ...`) until the main CLI wires `register`."""
    from dr4sr.errors import DR4SRError

    parser = argparse.ArgumentParser(prog="dr4sr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DR4SRError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    raise SystemExit(main())
