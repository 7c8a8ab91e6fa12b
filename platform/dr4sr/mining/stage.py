"""The `mine` stage's work: splits → patterns.parquet + pairs.parquet + stats.json (dr4sr.stages stores it).

Its artifact id hashes only what changes the result: {alpha, beta, max_pattern_len,
max_pairs_per_sequence, seed} and the splits' fingerprint. The engine and the worker count are
recorded in stats.json but do not enter the id: every engine returns the identical result.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dr4sr.artifacts import Artifact
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.mining.engines import ENGINES, mine
from dr4sr.mining.pairing import pair_patterns
from dr4sr.mining.patterns import PatternSet, validate_params


@dataclasses.dataclass(frozen=True)
class MineConfig:
    alpha: int = 5  # maximum span: last index − first index <= alpha − 1 (paper: 5 Beauty, 10 others)
    beta: int = 2  # minimum support, in distinct training sequences
    max_pattern_len: int | None = None  # None: up to alpha items
    max_pairs_per_sequence: int = 10  # pairs kept per user (seeded draw)
    seed: int = 0  # seed of the per-user draw

    def __post_init__(self):
        validate_params(self.alpha, self.beta, self.max_pattern_len)
        if not isinstance(self.max_pairs_per_sequence, int) or self.max_pairs_per_sequence < 1:
            raise ConfigError(f"mining: max_pairs_per_sequence must be an integer >= 1 "
                              f"(got {self.max_pairs_per_sequence!r})")
        if not isinstance(self.seed, int):
            raise ConfigError(f"mining: seed must be an integer (got {self.seed!r})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MineConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"mining: unknown config key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def mine_into(writer, splits, cfg: MineConfig, workers: int | None = None, engine: str = "native") -> None:
    """Mine and pair `splits.train_full` into the artifact writer's folder (dr4sr.stages runs it)."""
    if engine not in ENGINES:
        raise ConfigError(f"mining: unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    config = dataclasses.asdict(cfg)
    t0 = time.perf_counter()
    patterns = mine(splits.train_full, cfg.alpha, cfg.beta, engine=engine,
                    max_pattern_len=cfg.max_pattern_len, workers=workers)
    t1 = time.perf_counter()
    pair_workers = workers if engine == "native" else None
    pairs = pair_patterns(splits.train_full, splits.users, patterns, cfg.alpha,
                          cfg.max_pairs_per_sequence, cfg.seed, workers=pair_workers)
    t2 = time.perf_counter()

    stats = {
        "engine": engine, "workers": int(workers or 0), **config,
        "num_sequences": len(splits.train_full), "num_patterns": len(patterns),
        "num_pairs": len(pairs), "containments_before_cap": pairs.contained,
        "users_with_pairs": len(splits.train_full) - len(pairs.users_without_pairs),
        "users_without_pairs": len(pairs.users_without_pairs),
        "length_histogram": patterns.length_histogram(),
        "support": _support_summary(patterns.supports),
        "seconds": {"mine": round(t1 - t0, 3), "pair": round(t2 - t1, 3)},
    }
    write_patterns(writer.dir / "patterns.parquet", patterns)
    pq.write_table(pa.table({"user": pa.array(pairs.user, pa.int64()),
                             "pattern_id": pa.array(pairs.pattern_id, pa.int64())}),
                   writer.dir / "pairs.parquet")
    (writer.dir / "stats.json").write_text(json.dumps(stats, indent=2))
    writer.info.update({"rows": {"patterns": len(patterns), "pairs": len(pairs)},
                        "engine": engine, "workers": int(workers or 0), "timings": stats["seconds"]})


def _support_summary(supports: np.ndarray) -> dict:
    if len(supports) == 0:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(supports.min()), "median": float(np.median(supports)), "max": int(supports.max())}


def write_patterns(path: Path, patterns: PatternSet) -> None:
    lists = pa.ListArray.from_arrays(pa.array(patterns.offsets.astype(np.int32)),
                                     pa.array(patterns.values, pa.int64()))
    pq.write_table(pa.table({"pattern": lists, "support": pa.array(patterns.supports, pa.int64())}), path)


def read_patterns(path: Path) -> PatternSet:
    table = pq.read_table(path)
    col = table.column("pattern").combine_chunks()
    if len(col) == 0:
        return PatternSet.empty()
    offsets = col.offsets.to_numpy().astype(np.int64)
    values = col.values.to_numpy().astype(np.int64)
    values = values[offsets[0]:offsets[-1]]
    return PatternSet(values, offsets - offsets[0], table.column("support").to_numpy().astype(np.int64))


def load_mine_artifact(path: str | Path | Artifact) -> tuple[list[tuple[int, ...]], np.ndarray, pd.DataFrame]:
    """(patterns as tuples in canonical order, supports, pairs DataFrame[user, pattern_id])."""
    path = Path(path.path if isinstance(path, Artifact) else path)
    for name in ("patterns.parquet", "pairs.parquet"):
        if not (path / name).exists():
            raise DR4SRError(f"{path}: not a mine artifact (missing {name})")
    patterns = read_patterns(path / "patterns.parquet")
    pairs = pq.read_table(path / "pairs.parquet").to_pandas()
    return patterns.tuples(), patterns.supports, pairs
