"""Scale benchmark: native mining (+ pairing) on generated data up to 1M sequences.

Sequences draw items from a skewed (power-law) popularity over a vocabulary that grows with the
data (n/2 items, like the benchmark datasets); 40 patterns of length 3–5 are planted, each into
0.05% of the sequences with random gaps inside the α window. Each size runs in a subprocess
(clean peak RSS); the run checks every planted pattern is found with at least its planted support.

    RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=platform .venv/bin/python benchmarks/mining_scale.py \
        [--sizes 10000,100000,1000000] [--alpha 5] [--seq2pat-max 100000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform as _stdlib_platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def generate(n: int, alpha: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = max(1000, n // 2)
    popularity = np.arange(1, vocab + 1, dtype=np.float64) ** -0.8
    popularity /= popularity.sum()
    lens = np.clip(rng.geometric(1 / 8, size=n) + 2, 3, 60)
    flat = rng.choice(np.arange(1, vocab + 1), size=int(lens.sum()), p=popularity)
    seqs = np.split(flat, np.cumsum(lens)[:-1])
    planted = []
    per = max(2, n // 2000)
    all_hosts = rng.choice(n, size=40 * per, replace=False).reshape(40, per)  # disjoint: no overwrites
    for hosts in all_hosts:
        k = int(rng.integers(3, 6))
        pattern = rng.integers(1, vocab + 1, size=k)
        for h in hosts:
            s = seqs[h]
            # k positions within a window of alpha, starting inside (or extending) the sequence
            offsets = np.sort(rng.choice(alpha, size=k, replace=False))
            offsets -= offsets[0]
            start = int(rng.integers(0, max(1, len(s) - offsets[-1])))
            need = start + offsets[-1] + 1
            if need > len(s):
                s = np.concatenate([s, rng.integers(1, vocab + 1, size=need - len(s))])
            s[start + offsets] = pattern
            seqs[h] = s
        planted.append((tuple(int(x) for x in pattern), len(hosts)))
    return [np.asarray(s, dtype=np.int64) for s in seqs], planted


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def run_one(n: int, alpha: int, beta: int, engine: str) -> dict:
    sys.path.insert(0, str(ROOT / "platform"))
    from dr4sr.mining.engines import mine
    from dr4sr.mining.pairing import pair_patterns

    seqs, planted = generate(n, alpha)
    base = peak_rss_mb()
    t0 = time.perf_counter()
    patterns = mine(seqs, alpha, beta, engine=engine)
    t1 = time.perf_counter()
    out = {"n": n, "engine": engine, "positions": int(sum(len(s) for s in seqs)), "patterns": len(patterns),
           "mine_s": round(t1 - t0, 2)}
    support = dict(zip(patterns.tuples(), patterns.supports.tolist()))
    out["planted_found"] = sum(1 for p, c in planted if support.get(p, 0) >= c)
    out["planted"] = len(planted)
    if engine == "native":
        pairs = pair_patterns(seqs, np.arange(n), patterns, alpha)
        out.update(pairs=len(pairs), pair_s=round(time.perf_counter() - t1, 2))
    out.update(base_rss_mb=round(base), peak_rss_mb=round(peak_rss_mb()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    ap.add_argument("--alpha", type=int, default=5)
    ap.add_argument("--beta", type=int, default=2)
    ap.add_argument("--seq2pat-max", type=int, default=100000, help="largest size also run with seq2pat")
    ap.add_argument("--one", nargs=2, metavar=("N", "ENGINE"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), args.alpha, args.beta, args.one[1])))
        return
    print(f"# mining scale benchmark  {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {os.cpu_count()}-core CPU ({_stdlib_platform.machine()}), load average at start "
          f"{os.getloadavg()[0]:.1f}; alpha={args.alpha} beta={args.beta}; generated data, vocab n/2, "
          f"40 planted patterns in 0.05% of sequences each")
    print("# base RSS = after generating the data; peak RSS of the subprocess")
    head = (f"{'sequences':>10} {'positions':>10} {'engine':8} {'patterns':>10} {'mine s':>7} {'pairs':>9} "
            f"{'pair s':>7} {'base MB':>8} {'peak MB':>8} planted found")
    print(head)
    print("-" * len(head))
    for n in (int(x) for x in args.sizes.split(",")):
        engines = ["native"] + (["seq2pat"] if n <= args.seq2pat_max else [])
        for engine in engines:
            cmd = [sys.executable, __file__, "--one", str(n), engine, "--alpha", str(args.alpha),
                   "--beta", str(args.beta)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                                  env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
            if proc.returncode != 0:
                print(f"{n:>10,d} {'':>10} {engine:8} FAILED: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{n:>10,d} {r['positions']:>10,d} {engine:8} {r['patterns']:>10,d} {r['mine_s']:>7.2f} "
                  f"{r.get('pairs', 0):>9,d} {r.get('pair_s', 0):>7.2f} {r['base_rss_mb']:>8d} "
                  f"{r['peak_rss_mb']:>8d} {r['planted_found']}/{r['planted']}", flush=True)


if __name__ == "__main__":
    main()
