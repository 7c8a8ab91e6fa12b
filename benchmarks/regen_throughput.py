"""Regeneration throughput: batched + KV-cached decoding (in-process, Ray Data 1 and 2 actors) vs the
authors' way (one sequence and memory at a time, whole prefix re-run every step), same model.

    RAY_USAGE_STATS_ENABLED=0 DR4SR_DATA_DIR=/work/shared/datasets \
      nice -n 10 .venv/bin/python benchmarks/regen_throughput.py --store /tmp/dr4sr-regen-store

Uses the newest `pretrain` artifact of the store whose num_items matches the dataset (else a
randomly initialised regenerator, which decodes to the length cap: a pessimistic case).
Writes benchmarks/results/regen_throughput.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from dr4sr.data.datasets import load_dataset  # noqa: E402
from dr4sr.data.splits import leave_one_out  # noqa: E402
from dr4sr.regen.config import RegenerateConfig, RegeneratorConfig  # noqa: E402
from dr4sr.regen.decode import decode_batch, decode_reference  # noqa: E402
from dr4sr.regen.model import Regenerator  # noqa: E402
from dr4sr.regen.pretrain import load_regenerator  # noqa: E402
from dr4sr.regen.regenerate import regenerate_local, regenerate_ray  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "regen_throughput.txt"


def find_model(store: Path | None, num_items: int):
    if store is not None:
        for d in sorted((store / "pretrain").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            manifest = json.loads(d.read_text())
            metrics = json.loads((d.parent / "metrics.json").read_text())
            if metrics.get("num_items") == num_items:
                cfg = RegeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in manifest["config"]["regen"].items()})
                state = torch.load(d.parent / "model.pt", map_location="cpu", weights_only=True)
                return state, cfg, (f"pretrain artifact {d.parent.name} "
                                    f"(best valid loss {metrics['best_valid_loss']:.3f})")
    torch.manual_seed(0)
    cfg = RegeneratorConfig()
    return Regenerator(cfg, num_items).state_dict(), cfg, "random init (no pretrain artifact found)"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default="beauty")
    p.add_argument("--store", default=None)
    p.add_argument("--reference-sequences", type=int, default=200, help="sequences timed with the reference")
    p.add_argument("--sequences", type=int, default=0, help="sequences for the batched runs (0 = all)")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="batch threads of the threaded in-process run")
    p.add_argument("--smoke-test", action="store_true", help="tiny counts, no results file")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.reference_sequences, args.sequences = 5, 60
    torch.set_num_threads(1)  # one torch thread per process/actor/batch thread: a fair per-core comparison

    splits = leave_one_out(load_dataset(args.dataset))
    state, model_cfg, origin = find_model(Path(args.store) if args.store else None, splits.num_items)
    model = load_regenerator(state, model_cfg, splits.num_items)
    cfg = RegenerateConfig(gamma=args.gamma, batch_size=args.batch_size, device="cpu")
    n = args.sequences or len(splits.train)
    seqs, users = splits.train[:n], splits.users[:n]
    lines = [f"# regen_throughput  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"machine: {os.cpu_count()} CPU cores ({cpu_name()}), torch {torch.__version__}, "
             f"load average at start {os.getloadavg()[0]:.1f} (shared machine)",
             f"dataset {args.dataset}: {len(splits.train):,} training sequences, {splits.num_items:,} items; "
             f"model: {origin}; K={model_cfg.k}, gamma={args.gamma}, cap={cfg.max_length}, 1 torch thread per process "
             f"(per batch thread in the threaded run)",
             ""]
    results = {}

    m = args.reference_sequences
    t0 = time.perf_counter()
    ref = decode_reference(model, seqs[:m], users[:m], cfg)
    results["reference (one at a time, no cache)"] = (m, time.perf_counter() - t0)
    same = decode_batch(model, seqs[:m], users[:m], cfg)
    equal = [[x.tolist() for x in r] for r in ref] == [[x.tolist() for x in r] for r in same]

    t0 = time.perf_counter()
    local = regenerate_local(model, seqs, users, cfg, threads=1)
    results["batched + KV cache, in-process"] = (n, time.perf_counter() - t0)
    # the default on CPU: one batch per torch thread, side by side (the "2 threads, one process")
    t0 = time.perf_counter()
    threaded = regenerate_local(model, seqs, users, cfg, threads=args.threads)
    results[f"batched + KV cache, in-process, {args.threads} batch threads"] = (n, time.perf_counter() - t0)
    threads_equal = threaded.equals(local)

    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_equal = True
    for workers in (1, 2):
        t0 = time.perf_counter()
        table = regenerate_ray(state, model_cfg, splits.num_items, seqs, users, cfg, workers)
        results[f"batched + KV cache, Ray Data {workers} actor{'s' if workers > 1 else ''}"] = \
            (n, time.perf_counter() - t0)
        ray_equal &= table.equals(local)
    ray.shutdown()

    base = results["reference (one at a time, no cache)"]
    base_rate = base[0] / base[1]
    lens = [len(x) for x in local.column("sequence").to_pylist()]
    lines.append(f"{'variant':48} {'sequences':>9} {'seconds':>8} {'seq/s':>8} {'speed-up':>8}")
    for name, (count, secs) in results.items():
        rate = count / secs
        lines.append(f"{name:48} {count:9,d} {secs:8.1f} {rate:8.1f} {rate / base_rate:7.1f}x")
    lines += ["", f"generated patterns: {local.num_rows:,} rows, mean length {np.mean(lens):.2f}",
              f"reference == batched on the first {m} sequences: {equal}; Ray rows == in-process rows: {ray_equal}; "
              f"{args.threads}-thread rows == 1-thread rows: {threads_equal}",
              "Ray timings include actor start-up and model shipping (not ray.init)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.smoke_test:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    return 0 if equal and ray_equal and threads_equal else 1


if __name__ == "__main__":
    sys.exit(main())
