"""Hybrid regeneration of every training sequence into K patterns, in-process or on Ray Data.

Ray path: the sources become a Ray Dataset and `map_batches` runs over a fixed-size actor pool
(`compute=ActorPoolStrategy(size=workers)`); each actor holds the regenerator (on a GPU when the
cluster has GPUs) and decodes whole batches with `decode_batch`. Coin flips depend only on
(seed, user, k, step), so the rows are the same for any worker count or batch size.
"""
from __future__ import annotations

import ctypes
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import pyarrow as pa
import torch

from dr4sr.regen.config import RegenerateConfig, RegeneratorConfig
from dr4sr.regen.decode import decode_batch, memory_indices
from dr4sr.regen.pretrain import load_regenerator
from dr4sr.train.loop import resolve_device
from dr4sr.train.progress import fmt_seconds

PROGRESS_SECONDS = 30.0


def rows_table(users: np.ndarray, patterns: list[list[np.ndarray]], ks: list[int] | None = None) -> pa.Table:
    """Flatten decode output into (user, k, sequence) rows, in (user order, k) order; `ks` names the
    memory of each column of `patterns` (default 0..K-1)."""
    kk = len(patterns[0]) if patterns else 0
    ks = list(range(kk)) if ks is None else list(ks)
    flat = [p for row in patterns for p in row]
    lens = np.fromiter((len(p) for p in flat), dtype=np.int64, count=len(flat))
    offsets = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
    seq = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))
    return pa.table({"user": pa.array(np.repeat(np.asarray(users, dtype=np.int64), kk)),
                     "k": pa.array(np.tile(np.asarray(ks, dtype=np.int64), len(patterns))),
                     "sequence": seq})


def list_column(table: pa.Table, name: str) -> list[np.ndarray]:
    """A list<int64> column as numpy arrays (zero-copy slices of one values buffer)."""
    col = table.column(name).combine_chunks()
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(col))]


def by_length(sources: Sequence[np.ndarray]) -> np.ndarray:
    """Source order sorted by length: batches of similar lengths pad (and cross-attend) far less."""
    return np.argsort(np.fromiter((len(s) for s in sources), dtype=np.int64, count=len(sources)), kind="stable")


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 32 MB for reuse instead of unmapping them: each decode batch
    allocates tens of MB of keys/values, and fresh pages cost a page fault each (~13 us on these VMs),
    which 2 decode threads then contend for (+10% regeneration throughput at 2 batch threads,
    benchmarks/results/speed.txt, December 2026). Peak memory is unchanged; the process keeps it mapped.
    Does nothing off glibc. Returns whether it applied."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1
    ok &= libc.mallopt(m_trim_threshold, 1 << 30) == 1
    ok &= libc.mallopt(m_top_pad, 64 << 20) == 1
    return bool(ok)


def regenerate_local(model, sources: Sequence[np.ndarray], users: np.ndarray, cfg: RegenerateConfig,
                     device: torch.device | str = "cpu", log=None, threads: int | None = None) -> pa.Table:
    """All sources in this process. On CPU, `threads` (default: torch's thread count) decode whole batches
    side by side with one torch thread each: the decode loop's ops are too small for torch to split well
    (2 intra-op threads: 1.5x one; 2 batch threads: 1.7-1.8x, benchmarks/results/regen_throughput.txt).
    Batches are independent and their coins keyed per (user, k, step), so the rows do not change."""
    users = np.asarray(users, dtype=np.int64)
    device = torch.device(device)
    order = by_length(sources)
    chunks = [order[lo:lo + cfg.batch_size] for lo in range(0, len(sources), cfg.batch_size)]
    patterns: list = [None] * len(sources)
    progress = DecodeProgress(len(sources), log)

    def decode(idx: np.ndarray) -> list:
        return decode_batch(model, [sources[i] for i in idx], users[idx], cfg, device)

    if device.type == "cpu":
        keep_freed_memory()
    workers = 1 if device.type != "cpu" else max(1, threads or torch.get_num_threads())
    workers = min(workers, len(chunks)) or 1
    previous = torch.get_num_threads()
    pool = None
    if workers > 1:
        torch.set_num_threads(1)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="dr4sr-decode",
                                  initializer=torch.set_num_threads, initargs=(1,))
    try:
        done = 0
        for idx, rows in zip(chunks, pool.map(decode, chunks) if pool else map(decode, chunks)):
            for i, row in zip(idx, rows):
                patterns[i] = row
            done += len(idx)
            progress.update(done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            torch.set_num_threads(previous)
    return rows_table(users, patterns, memory_indices(cfg, model)) if len(sources) else rows_table(users[:0], [])


class DecoderActor:
    """Ray Data callable class: one regenerator per actor, reused for every batch it receives."""

    def __init__(self, state: dict, model_cfg: RegeneratorConfig, num_items: int, cfg: RegenerateConfig,
                 threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.model = load_regenerator(state, model_cfg, num_items).to(self.device)
        self.cfg = cfg

    def __call__(self, batch: pa.Table) -> pa.Table:
        users = batch.column("user").to_numpy()
        sources = list_column(batch, "sequence")
        return rows_table(users, decode_batch(self.model, sources, users, self.cfg, self.device),
                          memory_indices(self.cfg, self.model))


def regenerate_ray(state: dict, model_cfg: RegeneratorConfig, num_items: int, sources: Sequence[np.ndarray],
                   users: np.ndarray, cfg: RegenerateConfig, workers: int) -> pa.Table:
    import ray

    from dr4sr.train.ray_train import ensure_ray

    ensure_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    users = np.asarray(users, dtype=np.int64)
    order = by_length(sources)
    src = rows_table(users[order], [[np.asarray(sources[i], dtype=np.int64)] for i in order]).drop_columns(["k"])
    # blocks of ~4 decode batches, dispatched to whichever actor is free: balances short and long sources
    blocks = max(workers, -(-len(users) // (4 * cfg.batch_size)))
    # blocks made here, not by repartition(): a repartition task would wait for a CPU that the
    # actor pool already holds (a deadlock on a 2-CPU machine)
    step = -(-len(users) // blocks)
    ds = ray.data.from_arrow([src.slice(i, step) for i in range(0, len(users), step)])
    gpus = ray.cluster_resources().get("GPU", 0) > 0 and torch.cuda.is_available()
    out = ds.map_batches(
        DecoderActor,
        fn_constructor_kwargs={"state": state, "model_cfg": model_cfg, "num_items": num_items,
                               "cfg": cfg, "threads": None if gpus else 1},
        batch_size=cfg.batch_size, batch_format="pyarrow", zero_copy_batch=True,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)
    tables = [t for t in ray.get(out.to_arrow_refs()) if t.num_rows]
    if not tables:
        return rows_table(users[:0], [])
    table = pa.concat_tables(tables)
    return sort_rows(table, users)


def sort_rows(table: pa.Table, users: np.ndarray) -> pa.Table:
    """Back to (source order, k) order, whatever order the actors finished in."""
    order = {int(u): i for i, u in enumerate(users)}
    pos = np.fromiter((order[int(u)] for u in table.column("user").to_numpy()), dtype=np.int64,
                      count=table.num_rows)
    idx = np.lexsort((table.column("k").to_numpy(), pos))
    return table.take(pa.array(idx))


class DecodeProgress:
    """A line every PROGRESS_SECONDS: sequences done, rate, ETA (sources are sorted by length, so the
    rate falls as batches get longer; the ETA is optimistic early on)."""

    def __init__(self, total: int, log=None):
        self.total, self.log = total, log
        self.started = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.log is None or now - self.last < PROGRESS_SECONDS or done >= self.total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        self.log(f"regenerate: {done:,}/{self.total:,} sequences ({done / self.total:.0%}), {rate:,.0f}/s, "
                 f"ETA ~{fmt_seconds((self.total - done) / max(rate, 1e-9))}")


def regenerate(state: dict, model_cfg: RegeneratorConfig, num_items: int, sources: Sequence[np.ndarray],
               users: np.ndarray, cfg: RegenerateConfig, workers: int = 0,
               use_ray: bool | None = None, log=None) -> pa.Table:
    """Rows (user, k, sequence) for every source and memory; Ray Data when `use_ray` (default: workers > 1)."""
    if use_ray if use_ray is not None else workers > 1:
        return regenerate_ray(state, model_cfg, num_items, sources, users, cfg, max(workers, 1))
    device = resolve_device(cfg.device)
    model = load_regenerator(state, model_cfg, num_items).to(device)
    return regenerate_local(model, list(sources), users, cfg, device, log)
