"""Mining and pairing on Ray Data: users are sharded into contiguous blocks, one shard per row.

Mining is one Ray Data pass per level (map → aggregate → filter): every shard advances its own
occurrence states with the level's frequent table and emits partial support counts of the next
candidates, already reduced inside the shard (support counts distinct sequences, and a sequence
never straddles shards, so partial counts add up). The driver sums them and keeps support ≥ β.
Only candidates that extend a frequent pattern and whose suffix is frequent are ever counted,
so memory follows the frequent set, not the 2^(α−1) subsequences per window. A shard's state
travels between passes as a pickled column; results do not depend on the number of blocks.
"""
from __future__ import annotations

import os
import pickle
from typing import Sequence

import numpy as np

from dr4sr.mining.native import ShardMiner, merge_counts, mine_levelwise, vocab_size
from dr4sr.mining.pairing import build_trie, match_shard, select_pairs
from dr4sr.mining.patterns import PatternSet


def ensure_ray(num_cpus: int | None = None, quiet: bool = False) -> None:
    """Start a local Ray if none is running (usage stats off: the network may be closed).

    `quiet` (the CLI) also lowers Ray Data's per-dataset INFO log lines to warnings.
    """
    import logging

    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False)
    _quiet_ray_data()
    if quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    for flag in ("enable_progress_bars", "print_on_execution_start"):
        if hasattr(ctx, flag):
            setattr(ctx, flag, False)


def shard_bounds(n: int, num_blocks: int) -> list[tuple[int, int]]:
    """Contiguous user ranges, as equal as possible; never an empty shard."""
    k = max(1, min(int(num_blocks), n))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _dump(obj) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _shard_dataset(seqs: Sequence[np.ndarray], num_blocks: int, payload):
    """One row per shard {"shard", "lo", "state"}; `payload(lo, hi)` builds the shard's state."""
    import ray

    bounds = shard_bounds(len(seqs), num_blocks)
    rows = [{"shard": i, "lo": lo, "state": _dump(payload(lo, hi))} for i, (lo, hi) in enumerate(bounds)]
    return ray.data.from_items(rows, override_num_blocks=len(rows))


def _mine_step(row: dict, msg: dict) -> dict:
    shard: ShardMiner = pickle.loads(row["state"])
    keys, counts = shard.step(msg)
    return {"shard": row["shard"], "lo": row["lo"], "state": _dump(shard), "counts": _dump((keys, counts))}


def mine_ray(seqs: Sequence[np.ndarray], alpha: int, beta: int, max_len: int, num_blocks: int) -> PatternSet:
    ensure_ray()
    vocab = vocab_size(seqs)
    ds = _shard_dataset(seqs, num_blocks, lambda lo, hi: ShardMiner(seqs[lo:hi], vocab, alpha))

    def run_step(msg: dict) -> list[tuple[np.ndarray, np.ndarray]]:
        nonlocal ds
        ds = ds.map(_mine_step, fn_kwargs={"msg": msg}).materialize()
        rows = sorted(ds.select_columns(["shard", "counts"]).take_all(), key=lambda r: r["shard"])
        return [pickle.loads(r["counts"]) for r in rows]

    return mine_levelwise(run_step, vocab, beta, max_len)


def _pair_batch(row: dict, trie, alpha: int, max_pairs: int, seed: int) -> dict:
    seqs, users = pickle.loads(row["state"])
    seq_idx, pat_idx = match_shard(seqs, trie, alpha)
    contained = len(seq_idx)
    seq_idx, pat_idx = select_pairs(users, seq_idx, pat_idx, max_pairs, seed)
    return {"shard": row["shard"], "pairs": _dump((seq_idx + row["lo"], pat_idx, contained))}


def pair_ray(seqs: Sequence[np.ndarray], users: np.ndarray, patterns: PatternSet, alpha: int,
             max_pairs: int, seed: int, num_blocks: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(global sequence index, pattern index, containments before the cap), sorted by sequence."""
    ensure_ray()
    trie = build_trie(patterns, vocab_size(seqs))
    ds = _shard_dataset(seqs, num_blocks, lambda lo, hi: (list(seqs[lo:hi]), users[lo:hi]))
    ds = ds.map(_pair_batch, fn_kwargs={"trie": trie, "alpha": alpha, "max_pairs": max_pairs, "seed": seed})
    parts = [pickle.loads(r["pairs"]) for r in sorted(ds.take_all(), key=lambda r: r["shard"])]
    z = np.zeros(0, dtype=np.int64)
    seq_idx = np.concatenate([p[0] for p in parts]) if parts else z
    pat_idx = np.concatenate([p[1] for p in parts]) if parts else z
    return seq_idx.astype(np.int64), pat_idx.astype(np.int64), int(sum(p[2] for p in parts))


__all__ = ["ensure_ray", "mine_ray", "pair_ray", "shard_bounds", "merge_counts"]
