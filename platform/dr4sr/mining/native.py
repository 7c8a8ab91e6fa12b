"""Native miner: level-wise (Apriori-style) growth of span-constrained subsequences in numpy.

An occurrence state is (start, end, node): pattern `node` of the current level occurs in the
sequence with its first item at flat position `start` and its last item at `end`, with `end` the
smallest possible for that start (the earliest end leaves the most room to extend within the
window start .. start+α-1). States are unique per (start, node), so growing a pattern by item x
only needs x's first position after `end` — a later copy of x gives the same pattern with a
worse end; `prev_same` finds those copies without sorting.

Pruning (why it stays fast and memory-bounded): a length-(k+1) candidate P+x is counted only if
P is frequent (we grow from frequent states only), x is a frequent item, and its suffix
P[1:]+x is a frequent length-k pattern. Support is the number of distinct sequences, counted
per shard of whole sequences, so partial counts from shards simply add up.

`ShardMiner` holds one shard; `mine_levelwise` drives any collection of shards (a local list
here, Ray Data blocks in `distributed.py`) one level per pass.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from dr4sr.mining.patterns import PatternSet

# candidate rows expanded at once; bounds the temporary arrays (about 40 bytes per row)
CHUNK_ROWS = 4_000_000


@dataclasses.dataclass
class Corpus:
    items: np.ndarray  # flat item ids of the shard's sequences
    seq_of: np.ndarray  # local sequence index per position
    last: np.ndarray  # flat index of the last position of the position's sequence
    prev_same: np.ndarray  # previous flat position with the same item in the same sequence, else -1
    num_seqs: int


def build_corpus(sequences: Sequence[np.ndarray]) -> Corpus:
    lens = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    items = np.concatenate(sequences).astype(np.int64, copy=False) if len(sequences) else \
        np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if len(lens) else lens
    seq_of = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    last = np.repeat(starts + lens - 1, lens)
    prev_same = np.full(len(items), -1, dtype=np.int64)
    if len(items):
        key = seq_of * (int(items.max()) + 1) + items
        order = np.argsort(key, kind="stable")  # stable: positions ascending within (seq, item)
        same = key[order[1:]] == key[order[:-1]]
        prev_same[order[1:][same]] = order[:-1][same]
    return Corpus(items, seq_of, last, prev_same, len(lens))


def expand(corpus: Corpus, start: np.ndarray, end: np.ndarray, alpha: int,
           item_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All first-occurrence extensions of the states: (parent state index, new end position)."""
    lim = np.minimum(start + (alpha - 1), corpus.last[start])
    cnt = np.maximum(lim - end, 0)
    total = int(cnt.sum())
    parent = np.repeat(np.arange(len(start), dtype=np.int64), cnt)
    step = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    pos = end[parent] + 1 + step
    keep = (corpus.prev_same[pos] <= end[parent]) & item_ok[corpus.items[pos]]
    return parent[keep], pos[keep]


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique without its hash path (numpy 2.x np.unique is ~50x slower than a sort here)."""
    s = np.sort(x)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def run_lengths(sorted_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, run lengths) of a sorted array."""
    if len(sorted_x) == 0:
        return sorted_x, np.zeros(0, dtype=np.int64)
    first = np.concatenate([[0], np.flatnonzero(sorted_x[1:] != sorted_x[:-1]) + 1])
    return sorted_x[first], np.diff(np.append(first, len(sorted_x)))


def lookup(sorted_keys, keys: np.ndarray) -> np.ndarray:
    """Index of each key in `sorted_keys` (an array of unique keys or a `KeyIndex`), or -1 where absent."""
    index = sorted_keys if isinstance(sorted_keys, KeyIndex) else KeyIndex(sorted_keys)
    return index.find(keys)


class KeyIndex:
    """Hash lookup into unique int64 keys (pandas' hash engine: ~4x faster than searchsorted on
    millions of unsorted queries)."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self._index = pd.Index(keys) if len(keys) else None

    def find(self, queries: np.ndarray) -> np.ndarray:
        if self._index is None:
            return np.full(len(queries), -1, dtype=np.int64)
        return self._index.get_indexer(queries).astype(np.int64, copy=False)


def distinct_counts(keys: np.ndarray, seqs: np.ndarray, num_seqs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per key, the number of distinct sequences among (key, seq) rows: (sorted keys, counts)."""
    if len(keys) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    kmax = int(keys.max()) + 1
    uniq = None
    if kmax * max(num_seqs, 1) >= 2 ** 62:  # compress the key space to keep key*num_seqs in int64
        uniq = sorted_unique(keys)
        keys = np.searchsorted(uniq, keys)
    out, counts = run_lengths(sorted_unique(keys * num_seqs + seqs) // num_seqs)
    return (uniq[out] if uniq is not None else out), counts


def merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum partial (sorted keys, counts) from several shards."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    uniq, runs = run_lengths(keys)
    return uniq, np.add.reduceat(counts, np.cumsum(runs) - runs)


class ShardMiner:
    """Mining state of one shard of whole sequences; each `step` runs one level and returns partial counts."""

    def __init__(self, sequences: Sequence[np.ndarray], vocab: int, alpha: int):
        self.corpus = build_corpus(sequences)
        self.vocab, self.alpha = int(vocab), int(alpha)
        z = np.zeros(0, dtype=np.int64)
        self.cand_start, self.cand_end, self.cand_key = z, z, z  # candidate rows of the current level

    def step(self, msg: dict) -> tuple[np.ndarray, np.ndarray]:
        c, level = self.corpus, msg["level"]
        if level == 1:
            return distinct_counts(c.items, c.seq_of, c.num_seqs)
        item_node = msg["item_node"]  # level-1 id per item, -1 if infrequent
        item_ok = item_node >= 0
        if level == 2:
            start = np.flatnonzero(item_ok[c.items])
            end, node = start, item_node[c.items[start]]
            suffix_keys = suf = None
        else:  # keep the previous level's candidates that turned out frequent
            table = KeyIndex(msg["freq_keys"])
            node = table.find(self.cand_key)
            found = node >= 0
            start, end, node = self.cand_start[found], self.cand_end[found], node[found]
            suffix_keys, suf = table, msg["suf"]
        starts, ends, keys = [], [], []
        for lo, hi in expansion_chunks(c, start, end, self.alpha):
            parent, pos = expand(c, start[lo:hi], end[lo:hi], self.alpha, item_ok)
            parent += lo
            item = c.items[pos]
            key = node[parent] * self.vocab + item
            if suffix_keys is not None:  # Apriori: the suffix P[1:]+x must be frequent too
                ok = suffix_keys.find(suf[node[parent]] * self.vocab + item) >= 0
                parent, pos, key = parent[ok], pos[ok], key[ok]
            starts.append(start[parent]), ends.append(pos), keys.append(key)
        self.cand_start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self.cand_end = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
        self.cand_key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        return distinct_counts(self.cand_key, c.seq_of[self.cand_end], c.num_seqs)


def expansion_chunks(c: Corpus, start: np.ndarray, end: np.ndarray, alpha: int):
    """Split states into ranges whose expansion stays under CHUNK_ROWS rows."""
    if len(start) == 0:
        return
    per = np.minimum(start + (alpha - 1), c.last[start]) - end
    csum = np.cumsum(np.maximum(per, 0))
    lo = 0
    while lo < len(start):
        base = csum[lo - 1] if lo else 0
        hi = int(np.searchsorted(csum, base + CHUNK_ROWS, side="right"))
        hi = max(hi, lo + 1)
        yield lo, hi
        lo = hi


def vocab_size(sequences: Sequence[np.ndarray]) -> int:
    """Largest item id + 1 (item ids are non-negative), the radix of pattern keys."""
    nonempty = [s for s in sequences if len(s)]
    return int(np.concatenate(nonempty).max()) + 1 if nonempty else 1


StepRunner = Callable[[dict], list[tuple[np.ndarray, np.ndarray]]]


def mine_levelwise(run_step: StepRunner, vocab: int, beta: int, max_len: int) -> PatternSet:
    """Drive the levels: broadcast a message, sum the shards' partial counts, keep support >= β."""
    items, counts = merge_counts(run_step({"level": 1}))
    keep = counts >= beta
    freq_items = items[keep]
    item_node = np.full(vocab, -1, dtype=np.int64)
    item_node[freq_items] = np.arange(len(freq_items))
    mats = [freq_items.reshape(-1, 1)]  # patterns of each level, rows in lexicographic order
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    msg: dict = {"level": 2, "item_node": item_node}
    suf = None
    for level in range(2, max_len + 1):
        if len(mats[-1]) == 0:
            break
        keys, counts = merge_counts(run_step(msg))
        keep = counts >= beta
        keys, counts = keys[keep], counts[keep]
        parent, item = keys // vocab, keys % vocab
        mats.append(np.hstack([mats[-1][parent], item.reshape(-1, 1)]))
        levels.append((mats[-1], counts))
        # suffix id (a level-1 pattern id) of each new pattern, for the next level's pruning
        new_suf = item_node[item] if level == 2 else lookup(msg["freq_keys"], suf[parent] * vocab + item)
        suf = new_suf
        msg = {"level": level + 1, "item_node": item_node, "freq_keys": keys, "suf": suf}
    return PatternSet.concat_levels(levels)


def mine_native(sequences: Sequence[np.ndarray], alpha: int, beta: int, max_len: int,
                shard_size: int = 200_000) -> PatternSet:
    """Single-process native mining; sequences are split into shards of `shard_size` to bound memory."""
    vocab = vocab_size(sequences)
    shards = [ShardMiner(sequences[i:i + shard_size], vocab, alpha)
              for i in range(0, len(sequences), shard_size)]
    result = mine_levelwise(lambda msg: [s.step(msg) for s in shards], vocab, beta, max_len)
    return result
