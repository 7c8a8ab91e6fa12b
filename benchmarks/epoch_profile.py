"""Seconds per training epoch and per validation pass of a backbone on a benchmark dataset, and where
an epoch's time goes.

    OMP_NUM_THREADS=2 python benchmarks/epoch_profile.py --dataset beauty --backbone sasrec --epochs 3
    python benchmarks/epoch_profile.py --backbone sasrec --profile 20     # top ops of one epoch
    python benchmarks/epoch_profile.py --device cuda --precision bf16 --compile   # target 7 (GPU options)

It runs the real training loop's pieces (TrainBatcher, the backbone, next_item_loss, Adam, the
full-ranking evaluation; not CL4SRec's auxiliary contrastive loss) without early stopping or checkpoints, \
so each epoch is timed alone. Both
wall and process CPU seconds are printed: on a shared machine CPU seconds / threads is the steadier
figure. The first epoch includes warm-up and is reported separately (with --compile: the compile).
--precision bf16 runs the forward and loss under torch.autocast (bf16) with fp32 weights and Adam;
--compile wraps the backbone in torch.compile. The losses and N@20 printed are what to compare with
the fp32 eager run of the same seed ("exact enough"); benchmarks/gpu_bench.sh runs the whole matrix.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import accel  # a sibling script: this folder is sys.path[0]
import torch

from dr4sr.data.batching import TrainBatcher
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import build_backbone, get_backbone
from dr4sr.train.loop import LoopContext, adam, evaluate
from dr4sr.train.losses import hidden_for_targets, next_item_loss
from dr4sr.train.runner import build_run_config, prepare_splits


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--backbone", default="sasrec")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest ops of one epoch")
    ap.add_argument("--shapes", action="store_true", help="profile: group ops by input shapes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    accel.add_arguments(ap, "torch.compile the backbone (eval stays eager)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from dr4sr.config import parse_overrides

    cfg = build_run_config(args.backbone, args.dataset, parse_overrides(args.overrides))
    device = accel.device_of(args)
    splits = prepare_splits(cfg)
    torch.manual_seed(cfg.train.seed)
    model = build_backbone(cfg.backbone, cfg.model, BuildContext(splits.num_items, splits.max_len,
                                                                 original_train=splits.train))
    batcher = TrainBatcher(splits.train, cfg.train.batch_size, model.training_mode, splits.max_len, seed=cfg.train.seed)
    model.to(device)
    opt = adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    gen = torch.Generator(device=device)
    ctx = LoopContext(device)
    net = torch.compile(model) if args.compile else model
    if get_backbone(cfg.backbone).auxiliary is not None:
        print(f"note: {cfg.backbone}'s auxiliary objective is NOT included here (next-item loss only); "
              "time it with a real run (metrics.json seconds_per_epoch)", flush=True)
    print(f"{args.backbone} on {args.dataset}: {batcher.num_rows:,} rows, {batcher.num_targets():,} targets, "
          f"{len(batcher)} batches of {cfg.train.batch_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; {accel.describe(args, device)}",
          flush=True)

    def train_epoch(epoch: int) -> float:
        model.train()
        gen.manual_seed(epoch)
        total = 0.0
        for batch in batcher.epoch(epoch):
            batch = batch.to(device)
            with accel.autocast(args, device):
                hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets, net)
                loss, _ = next_item_loss(model, hidden, batch.targets, cfg.train.loss, None, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        return total / len(batcher)

    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out, time.perf_counter() - w0, time.process_time() - c0

    loss, wall, cpu = timed(lambda: train_epoch(0))
    print(f"warm-up epoch: {wall:.2f} s wall, {cpu:.2f} s CPU, loss {loss:.4f}", flush=True)
    walls, evals = [], []
    for e in range(1, args.epochs + 1):
        loss, wall, cpu = timed(lambda: train_epoch(e))
        (valid, _), ewall, ecpu = timed(lambda: evaluate(model, splits, "valid", ctx, cfg.train.eval_batch_size))
        walls.append(wall)
        evals.append(ewall)
        print(f"epoch {e}: train {wall:.2f} s wall ({cpu:.2f} s CPU), loss {loss:.4f} | valid pass {ewall:.2f} s "
              f"wall ({ecpu:.2f} s CPU), N@20 {valid['ndcg@20']:.4f}", flush=True)
    if walls:
        print(f"median: train {sorted(walls)[len(walls) // 2]:.2f} s/epoch, "
              f"valid {sorted(evals)[len(evals) // 2]:.2f} s"
              f" | load {os.getloadavg()[0]:.1f}")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            train_epoch(args.epochs + 1)
        print(prof.key_averages(group_by_input_shape=args.shapes)
              .table(sort_by="self_cpu_time_total", row_limit=args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
