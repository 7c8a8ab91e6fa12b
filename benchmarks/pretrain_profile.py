"""Seconds per regenerator pre-training epoch on a benchmark dataset, and where the time goes.

    OMP_NUM_THREADS=2 python benchmarks/pretrain_profile.py --dataset beauty --epochs 2
    python benchmarks/pretrain_profile.py --epochs 1 --profile 25          # top ops of one epoch
    python benchmarks/pretrain_profile.py --device cuda --precision bf16 --compile   # target 7 (GPU options)

It mines (or reuses the mine artifact in --store), builds the (sequence, pattern) pairs exactly as the
`pretrain` stage does, and runs the real `pretrain_fit` loop from scratch weights (the SASRec init
changes the numbers, not the cost) for --epochs epochs with no early stopping. Wall and process CPU
seconds per epoch are printed; the first epoch includes warm-up. Nothing is written to the store but
the mine artifact. --precision bf16 runs the whole loop under torch.autocast (bf16; weights and Adam
stay fp32); --compile runs the forward through torch.compile (the loop's `ctx.wrap`). Compare the
printed losses with the fp32 eager run's.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import accel  # a sibling script: this folder is sys.path[0]
import torch

from dr4sr.artifacts import ArtifactStore
from dr4sr.config import parse_overrides
from dr4sr.mining.stage import MineConfig
from dr4sr.regen.config import build_regen_config
from dr4sr.regen.pretrain import PretrainInput, pretrain_fit
from dr4sr.regen.stage import pair_data_from_mine
from dr4sr.stages import Runtime, StageGraph, execute
from dr4sr.stages.kinds import MineStage
from dr4sr.train.loop import LoopContext
from dr4sr.train.runner import build_run_config, prepare_splits


class CompiledContext(LoopContext):
    """The loop runs its forward through `ctx.wrap(model)`: compile there, keep the eager model for the rest."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return torch.compile(model)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--store", default="artifacts")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="profile the run; print the N costliest ops")
    ap.add_argument("--shapes", action="store_true", help="profile: group ops by input shapes")
    ap.add_argument("--preset", default=None)
    accel.add_arguments(ap, "torch.compile the regenerator's forward")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    device = accel.device_of(args)
    cfg = build_regen_config(parse_overrides(args.overrides), args.dataset, args.preset)
    splits = prepare_splits(build_run_config("sasrec", args.dataset))
    stage = MineStage(splits, MineConfig.from_dict(dict(cfg.mine)), Runtime())
    mine = execute(StageGraph(stage), ArtifactStore(args.store), log=lambda s: None)[stage]
    train, valid = pair_data_from_mine(splits, mine.path).split(cfg.pretrain.valid_fraction, cfg.pretrain.seed)
    pre = dataclasses.replace(cfg.pretrain, max_epochs=args.epochs, patience=0)
    inp = PretrainInput(cfg.regen, pre, splits.num_items, train, valid)
    print(f"regenerator on {args.dataset}: {len(train):,} train pairs, {len(valid):,} held out, batch "
          f"{pre.batch_size}; torch {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; "
          f"{accel.describe(args, device)}", flush=True)
    ctx = CompiledContext(device) if args.compile else LoopContext(device)
    ctx.show_progress = False
    w0, c0 = time.perf_counter(), time.process_time()
    with accel.autocast(args, device):
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
                out = pretrain_fit(inp, ctx, log=lambda s: None)
        else:
            out = pretrain_fit(inp, ctx, log=lambda s: None)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    for h in out["metrics"]["history"]:
        print(f"epoch {h['epoch']}: {h['seconds']:.2f} s wall (train + held-out loss), train loss "
              f"{h['train_loss']:.4f}, valid {h['valid_loss']:.4f}")
    print(f"{args.epochs} epochs: {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"train-only {out['metrics']['seconds_per_epoch']:.2f}"
          f" s/epoch | load {os.getloadavg()[0]:.1f}")
    if args.profile:
        print(prof.key_averages(group_by_input_shape=args.shapes)
              .table(sort_by="self_cpu_time_total", row_limit=args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
