"""Train backbones on a benchmark dataset under the paper protocol and compare with the paper's Table 3.

    python benchmarks/backbones_bench.py --backbones fmlp gcegnn cl4srec --dataset beauty \
        [--set train.max_epochs=200] [--out-root /tmp/dr4sr-bench] [--threads 1] [--smoke-test]
    python benchmarks/backbones_bench.py --backbones sasrec fmlp --time-batches 20 --threads 1   # epoch cost only

Each backbone runs in its own child process (so its peak RSS is its own), one after the other, to early
stopping (patience 20 on valid NDCG@20) unless capped by --set train.max_epochs. After every backbone a
table row is appended to benchmarks/results/backbones.txt: test Recall/NDCG@10/20 next to the paper's row,
train seconds/epoch, eval seconds/epoch, epochs run, peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from dr4sr.search.paper import TABLE3  # paper Table 3 (R@10, R@20, N@10, N@20)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "backbones.txt"
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def run_one(backbone: str, dataset: str, out: Path, overrides: list[str], smoke: bool, threads: int) -> dict:
    """Child process: train + test one backbone, then record this process's peak RSS."""
    import torch

    from dr4sr.config import parse_overrides

    if threads > 0:
        torch.set_num_threads(threads)
    from dr4sr.train.runner import build_run_config, train_stage

    cfg = build_run_config(backbone, dataset, parse_overrides(overrides), smoke_test=smoke)
    train_stage(cfg, out, store_root=str(out.parent / "artifacts"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    bench = {"peak_rss_mb": peak_mb, "max_epochs": cfg.train.max_epochs, "patience": cfg.train.patience,
             "threads": torch.get_num_threads()}
    (out / "bench.json").write_text(json.dumps(bench))
    return bench


def time_batches(backbone: str, dataset: str, n: int, threads: int) -> str:
    """Train-step cost without a full run: time n batches (after 2 warm-up) and extrapolate to an epoch."""
    import itertools
    import types

    import torch

    from dr4sr.config import from_dict
    from dr4sr.data.batching import TrainBatcher
    from dr4sr.models.base import BuildContext
    from dr4sr.models.registry import get_backbone
    from dr4sr.train.losses import hidden_for_targets, next_item_loss
    from dr4sr.train.runner import build_run_config, prepare_splits

    if threads > 0:
        torch.set_num_threads(threads)
    cfg = build_run_config(backbone, dataset)
    splits = prepare_splits(cfg)
    spec = get_backbone(backbone)
    mcfg = from_dict(spec.config_cls, cfg.model, "model.")
    model = spec.model_cls(mcfg, BuildContext(splits.num_items, splits.max_len, splits.train, None, splits.fingerprint))
    batcher = TrainBatcher(splits.train, cfg.train.batch_size, model.training_mode, splits.max_len)
    inp = types.SimpleNamespace(cfg=cfg, splits=splits, sequences=splits.train)
    aux = spec.auxiliary(mcfg, inp) if spec.auxiliary else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(0)
    batches = list(itertools.islice(batcher.epoch(0), n + 2))

    def step(batch):
        hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets)
        loss, _ = next_item_loss(model, hidden, batch.targets, cfg.train.loss, None, gen)
        if aux is not None:
            loss = loss + aux(model, batch, hidden, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for b in batches[:2]:
        step(b)
    w0, c0 = time.perf_counter(), time.process_time()
    for b in batches[2:]:
        step(b)
    wall, cpu = (time.perf_counter() - w0) / n, (time.process_time() - c0) / n
    return (f"{backbone:<8} {batcher.num_rows:>7} rows {len(batcher):>4} batches/epoch | {n} batches: "
            f"{wall:.3f} s/batch wall, {cpu:.3f} s/batch cpu -> ~{wall * len(batcher):.0f} s wall, "
            f"~{cpu * len(batcher):.0f} s cpu per epoch (torch threads {torch.get_num_threads()})")


def table_row(backbone: str, metrics: dict, bench: dict) -> str:
    t = metrics["test"]
    stopped = metrics["epochs"] < bench["max_epochs"]
    note = "early-stopped" if stopped else f"CAPPED at {bench['max_epochs']} epochs"
    return (f"{backbone:<8} ours  " + " ".join(f"{t[k]:.4f}" for k in KEYS)
            + f"  {metrics['best_epoch']:>4} {metrics['epochs']:>4}  {metrics['seconds_per_epoch']:7.1f}"
            f"  {metrics['eval_seconds_per_epoch']:6.1f}  {bench['peak_rss_mb']:7.0f}  {note}")


def paper_row(backbone: str, dataset: str) -> str:
    p = TABLE3.get((backbone, "backbone"), {}).get(dataset)
    if p is None:
        return f"{backbone:<8} paper (no row)"
    return f"{backbone:<8} paper " + " ".join(f"{v:.4f}" for v in p)


HEADER = ("backbone src   R@10   R@20   N@10   N@20   best  ran  s/epoch  eval-s  peakMB  note")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=["fmlp", "gcegnn", "cl4srec"])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out-root", default=os.environ.get("DR4SR_BENCH_DIR", "/tmp/dr4sr-bench"))
    ap.add_argument("--results", default=str(RESULTS))
    # On a shared, oversubscribed CPU, 2 OpenMP threads made a SASRec batch ~10x slower than 1 thread
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--smoke-test", action="store_true", help="2 epochs per backbone; results not recorded")
    ap.add_argument("--time-batches", type=int, default=0, metavar="N",
                    help="only time N training batches per backbone and extrapolate the epoch cost")
    ap.add_argument("--run-one", default=None, help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = Path(args.out_root) / args.dataset
    if args.run_one:
        run_one(args.run_one, args.dataset, root / args.run_one, args.overrides, args.smoke_test, args.threads)
        return 0
    if args.time_batches:
        lines = [time_batches(b, args.dataset, args.time_batches, args.threads) for b in args.backbones]
        print("\n".join(lines))
        with open(args.results, "a") as f:
            f.write(f"\n# {args.dataset}: train-step cost, {time.strftime('%Y-%m-%d %H:%M')}\n"
                    + "\n".join(lines) + "\n")
        return 0
    for backbone in args.backbones:
        cmd = [sys.executable, __file__, "--run-one", backbone, "--dataset", args.dataset,
               "--out-root", args.out_root, "--threads", str(args.threads)] + [f"--set={o}" for o in args.overrides]
        if args.smoke_test:
            cmd.append("--smoke-test")
        started = time.time()
        print(f"== {backbone}: {' '.join(cmd)}", flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"== {backbone} failed with exit code {rc}", flush=True)
            continue
        out = root / backbone
        metrics = json.loads((out / "metrics.json").read_text())
        bench = json.loads((out / "bench.json").read_text())
        lines = [table_row(backbone, metrics, bench), paper_row(backbone, args.dataset)]
        print("\n".join([HEADER, *lines]), flush=True)
        if not args.smoke_test:
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
            with open(args.results, "a") as f:
                f.write(f"\n# {args.dataset} / {backbone}, started {stamp}, wall {time.time() - started:.0f} s, "
                        f"overrides {args.overrides or 'none'}, torch threads {bench.get('threads')}\n{HEADER}\n"
                        + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
