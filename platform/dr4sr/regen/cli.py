"""`dr4sr pretrain` and `dr4sr regenerate`: each runs the stages it needs, reusing cached artifacts."""
from __future__ import annotations

import argparse
import json

from dr4sr.cli_args import positive_int, preset_arg
from dr4sr.config import deep_merge, parse_overrides


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp, or a path")
    p.add_argument("--data-dir", default=None, help="folder with <name>.txt (default: $DR4SR_DATA_DIR)")
    p.add_argument("--max-len", type=int, default=50, help="sequences cut to their last N items before the split")
    p.add_argument("--alpha", type=int, default=None, help="mining span (default: per dataset, 5 Beauty / 10 others)")
    p.add_argument("--beta", type=int, default=None, help="mining min support (default 2)")
    p.add_argument("--k", type=int, default=None, help="diversity factor K (default 5)")
    p.add_argument("--init", choices=("sasrec", "scratch"), default=None, help="regenerator initialisation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of configs/regenerator.yaml, e.g. --set pretrain.max_epochs=10")
    preset_arg(p)
    p.add_argument("--workers", type=positive_int, default=1, help="Ray workers (1 = local loops, no Ray)")
    p.add_argument("--gpus", action="store_true", help="pre-train on one GPU per worker (NCCL)")
    p.add_argument("--out", default=None, help="artifact store root (default $DR4SR_ARTIFACTS or ./artifacts)")
    p.add_argument("--smoke-test", action="store_true",
                   help="the smoke budgets of `dr4sr run --smoke-test` (2 epochs for the SASRec init and for "
                        "pre-training), so that run reuses these artifacts; an explicit --set wins")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="mine pairs and pre-train the DR4SR regenerator")
    _common(p)
    p.set_defaults(func=cmd_pretrain)
    p = subparsers.add_parser("regenerate", help="regenerate a dataset with the pre-trained regenerator")
    _common(p)
    p.add_argument("--gamma", type=float, default=None, help="probability of a generative step (default 0.1)")
    p.add_argument("--seed", type=int, default=None, help="seed of the hybrid-decoding coin flips (default 0)")
    p.set_defaults(func=cmd_regenerate)


def _prepare(args):
    from dr4sr.artifacts import ArtifactStore
    from dr4sr.data.datasets import load_dataset
    from dr4sr.data.splits import leave_one_out
    from dr4sr.paths import require_writable
    from dr4sr.regen.config import build_regen_config

    cli: dict = {}
    flags = {("mine", "alpha"): args.alpha, ("mine", "beta"): args.beta, ("regen", "k"): args.k,
             ("init", "mode"): args.init, ("regenerate", "gamma"): getattr(args, "gamma", None),
             ("regenerate", "seed"): getattr(args, "seed", None)}
    for (section, key), value in flags.items():
        if value is not None:
            cli.setdefault(section, {})[key] = value
    overrides = deep_merge(cli, parse_overrides(args.overrides))
    cfg = build_regen_config(overrides, args.dataset, args.preset, args.smoke_test)
    store = ArtifactStore(args.out)
    require_writable(store.root, "artifact store", "pass --out DIR or set $DR4SR_ARTIFACTS")
    splits = leave_one_out(load_dataset(args.dataset, args.data_dir), args.max_len)
    return cfg, splits, store


def _runtime(args):
    from dr4sr.stages import Runtime

    return Runtime(args.workers, args.gpus)


def cmd_pretrain(args) -> int:
    from dr4sr.stages import StageGraph, execute
    from dr4sr.stages.variants import regeneration

    cfg, splits, store = _prepare(args)
    pre = regeneration(splits, cfg, _runtime(args)).pretrain
    art = execute(StageGraph(pre), store)[pre]
    metrics = json.loads((art.path / "metrics.json").read_text())
    print(f"best valid loss {metrics['best_valid_loss']:.4f} at epoch {metrics['best_epoch']} of "
          f"{metrics['epochs']} ({metrics['seconds_per_epoch']:.1f} s/epoch, {metrics['train_pairs']:,} pairs)")
    print(f"wrote pretrain artifact {art.path}")
    return 0


def cmd_regenerate(args) -> int:
    from dr4sr.config import to_dict
    from dr4sr.data.stats import format_stats
    from dr4sr.regen.compose import read_dataset
    from dr4sr.regen.stage import composition_stats
    from dr4sr.stages import StageGraph, execute
    from dr4sr.stages.variants import regeneration

    cfg, splits, store = _prepare(args)
    regen = regeneration(splits, cfg, _runtime(args))
    art = execute(StageGraph(regen), store)[regen]
    stats = json.loads((art.path / "stats.json").read_text())
    if stats.get("compose") != to_dict(cfg.compose):  # built under another compose config (not in its id)
        mine_path = store.path("mine", art.manifest["inputs"]["mine"])
        stats.update(composition_stats(splits, mine_path, read_dataset(art.path), cfg.compose))
    print(f"training rows by source (compose.mined={cfg.compose.mined}, compose.dedupe={cfg.compose.dedupe}):")
    for comp, counts in stats["training_rows"].items():
        print(f"  {comp:28} {sum(counts.values()):>10,}  {counts}")
    for comp in ("regenerated", "regenerated+mined+original", "original"):
        print(format_stats(comp, stats[comp]))
    print(f"wrote regenerate artifact {art.path}")
    return 0
