"""Mining benchmark: seq2pat vs native (one process) vs native on Ray Data (2 blocks), per dataset.

Every (dataset, α, engine) runs in its own subprocess so its peak RSS is clean. Times exclude
loading the data and starting Ray (Ray is warmed up on a toy input first). The engines must
return the identical pattern set (checked through a hash of patterns and supports).

    RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=platform .venv/bin/python benchmarks/mining_bench.py \
        --data-dir /work/shared/datasets [--datasets beauty,toys] [--quick]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform as _stdlib_platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER_ALPHA = {"beauty": 5, "sports": 10, "toys": 10, "yelp": 10}
AUTHORS_COUNTS_A5 = {"toys": 19726, "sports": 21999, "yelp": 26717}


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # seq2pat mines in a child process
    return max(own, kids) / 1024.0


def run_one(dataset: str, data_dir: str, alpha: int, engine: str, workers: int) -> dict:
    sys.path.insert(0, str(ROOT / "platform"))
    import numpy as np

    from dr4sr.data.datasets import load_dataset
    from dr4sr.data.splits import leave_one_out
    from dr4sr.mining.engines import mine
    from dr4sr.mining.pairing import pair_patterns

    splits = leave_one_out(load_dataset(dataset, data_dir))
    seqs = splits.train_full
    if workers:
        import logging

        from dr4sr.mining.distributed import ensure_ray
        ensure_ray(num_cpus=2)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        mine([[1, 2, 3], [1, 2, 3]], 2, 2, workers=workers)  # start the workers outside the timing
    base = peak_rss_mb()
    t0 = time.perf_counter()
    patterns = mine(seqs, alpha, 2, engine=engine, workers=workers or None)
    t1 = time.perf_counter()
    out = {"dataset": dataset, "alpha": alpha, "engine": engine, "workers": workers,
           "patterns": len(patterns), "mine_s": round(t1 - t0, 3)}
    if engine == "native":
        pairs = pair_patterns(seqs, splits.users, patterns, alpha, 10, 0, workers=workers or None)
        out.update(pairs=len(pairs), users=len(seqs), no_pairs=len(pairs.users_without_pairs),
                   pair_s=round(time.perf_counter() - t1, 3))
    h = hashlib.sha256()
    for arr in (patterns.offsets, patterns.values, patterns.supports):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    out.update(hash=h.hexdigest()[:16], base_rss_mb=round(base), peak_rss_mb=round(peak_rss_mb()))
    return out


def spawn(dataset: str, data_dir: str, alpha: int, engine: str, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--one", dataset, str(alpha), engine, str(workers), "--data-dir", data_dir]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("DR4SR_DATA_DIR", "/work/shared/datasets"))
    ap.add_argument("--datasets", default="beauty,sports,toys,yelp")
    ap.add_argument("--quick", action="store_true", help="α=5 only, no Ray (smoke test)")
    ap.add_argument("--settings", default=None,
                    help="explicit dataset:alpha list instead of the grid, e.g. beauty:10,yelp:5")
    ap.add_argument("--one", nargs=4, metavar=("DATASET", "ALPHA", "ENGINE", "WORKERS"))
    args = ap.parse_args()
    if args.one:
        d, a, e, w = args.one
        print(json.dumps(run_one(d, args.data_dir, int(a), e, int(w))))
        return

    names = args.datasets.split(",")
    settings = [(d, 5) for d in names] + ([] if args.quick else [(d, PAPER_ALPHA[d]) for d in names
                                                                 if PAPER_ALPHA[d] != 5])
    if args.settings:
        settings = [(d, int(a)) for d, a in (x.split(":") for x in args.settings.split(","))]
    variants = [("seq2pat", 0), ("native", 0)] + ([] if args.quick else [("native", 2)])
    print(f"# mining benchmark  {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {os.cpu_count()}-core CPU ({_stdlib_platform.processor() or _stdlib_platform.machine()}), "
          f"python {_stdlib_platform.python_version()}, beta=2, max_pairs=10, seed=0, "
          f"load average at start {os.getloadavg()[0]:.1f} (shared machine)")
    print("# times exclude data loading and Ray start-up; peak RSS per subprocess "
          "(ray: driver only, its 2 workers not included)")
    head = (f"{'dataset':8} {'α':>2} {'patterns':>9} {'pairs':>7} {'no-pair users':>14} "
            f"{'seq2pat s':>9} {'native s':>8} {'speedup':>7} {'ray2 s':>7} {'pair s':>6} {'ray2 pair s':>11} "
            f"{'RSS s2p MB':>10} {'RSS nat MB':>10} {'RSS ray MB':>10} equal")
    print(head)
    print("-" * len(head))
    for d, a in settings:
        res = {f"{e}{w}": spawn(d, args.data_dir, a, e, w) for e, w in variants}
        s2p, nat, ray2 = res["seq2pat0"], res["native0"], res.get("native2")
        equal = len({r["hash"] for r in res.values()}) == 1
        ray_cols = (f"{ray2['mine_s']:7.2f} {nat['pair_s']:6.2f} {ray2['pair_s']:11.2f}" if ray2 else
                    f"{'-':>7} {nat['pair_s']:6.2f} {'-':>11}")
        print(f"{d:8} {a:2d} {nat['patterns']:9,d} {nat['pairs']:7,d} {nat['no_pairs']:>6,d}/{nat['users']:<7,d} "
              f"{s2p['mine_s']:9.2f} {nat['mine_s']:8.3f} {s2p['mine_s'] / nat['mine_s']:6.1f}x {ray_cols} "
              f"{s2p['peak_rss_mb']:10d} {nat['peak_rss_mb']:10d} {ray2['peak_rss_mb'] if ray2 else '-':>10} "
              f"{'yes' if equal else 'NO'}", flush=True)
        assert equal, f"engines disagree on {d} α={a}: {res}"
    ref = ", ".join(f"{k} {v:,}" for k, v in AUTHORS_COUNTS_A5.items())
    print(f"# authors' pattern counts at α=5, β=2: {ref}")


if __name__ == "__main__":
    main()
