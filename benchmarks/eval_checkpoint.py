"""Test metrics of a training checkpoint's best-so-far weights, for a run stopped before early stopping.

    python benchmarks/eval_checkpoint.py --checkpoint artifacts/train/.staging-ID/checkpoints/last.pt \
        --dataset beauty --backbone sasrec --out runs/x-truncated [--set model.dropout=0.5]
    python benchmarks/eval_checkpoint.py --melt --checkpoint runs/melt/checkpoints/last.pt --dataset beauty \
        --out runs/melt-truncated     # a `dr4sr baseline melt` run: configs/melt.yaml, W_U/W_I routing

Writes OUT/metrics.json (test and best validation metrics, best epoch, epochs run, `truncated: true`)
and OUT/user_metrics.parquet, so `dr4sr report` can pair the run with others. The numbers are those of
a truncated run: say so wherever they are quoted.
"""
from __future__ import annotations

import argparse
import sys

import torch

from dr4sr.config import CONFIG_DIR, from_dict, load_yaml, parse_overrides
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import get_backbone
from dr4sr.train.loop import LoopContext, test_ranks
from dr4sr.train.runner import build_run_config, prepare_splits
from dr4sr.train.worker import load_checkpoint, write_outputs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--backbone", default="sasrec")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--melt", action="store_true", help="a MELT run's checkpoint (rank through its branches)")
    args = ap.parse_args(argv)
    defaults = load_yaml(CONFIG_DIR / "melt.yaml") if args.melt else None
    cfg = build_run_config(args.backbone, args.dataset, parse_overrides(args.overrides), defaults=defaults)
    splits = prepare_splits(cfg)
    spec = get_backbone(cfg.backbone)
    model = spec.model_cls(from_dict(spec.config_cls, cfg.model, "model."),
                           BuildContext(num_items=splits.num_items, max_len=splits.max_len,
                                        original_train=splits.train))
    state = load_checkpoint(args.checkpoint)
    model.load_state_dict(state["best_model"])
    hook = None
    if args.melt:
        from dr4sr.baselines.melt import MeltSetup

        hook = MeltSetup(cfg, splits.train, splits.num_items, splits.max_len).hook(cfg.train.loss)
        hook.start(model, LoopContext())
        hook.branches.load_state_dict(state["hook"]["best"])
    model.eval()
    with torch.no_grad():
        test, ranks = test_ranks(model, splits, LoopContext(), cfg.train.eval_batch_size, hook)
    best = next(h for h in state["history"] if h["epoch"] == state["best_epoch"])
    metrics = {"test": test, "valid": {k[6:]: v for k, v in best.items() if k.startswith("valid_")},
               "best_epoch": state["best_epoch"], "epochs": state["epoch"] + 1, "truncated": True,
               "checkpoint": args.checkpoint, "seconds_per_epoch": 0.0, "history": state["history"]}
    write_outputs(args.out, metrics, ranks, splits.users)
    print(f"{args.out}: test {test} (best epoch {state['best_epoch']} of {state['epoch'] + 1} run, truncated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
