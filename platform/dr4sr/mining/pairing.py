"""Pairing: for each training sequence, the mined patterns it contains (same span rule as mining).

Matching grows occurrence states along a trie of the patterns with the native miner's kernel
(`native.expand`), so it costs about as much as one mining pass instead of the authors' pure
Python loop (18–53 min per dataset). Each user keeps at most `max_pairs` of its patterns, the
ones with the smallest hash of (seed, user id, pattern id): a seeded draw that depends on the
user only, never on how users are sharded.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from dr4sr.errors import ConfigError
from dr4sr.mining.native import KeyIndex, build_corpus, expand, expansion_chunks, sorted_unique, vocab_size
from dr4sr.mining.patterns import PatternSet, as_int_sequences


@dataclasses.dataclass
class PatternTrie:
    vocab: int
    item_node: np.ndarray  # level-1 node per item id, -1 when no pattern starts with it
    item_used: np.ndarray  # bool per item id: appears in some pattern
    level_keys: list[np.ndarray]  # level_keys[k-1]: sorted keys parent_node * vocab + item of level k
    terminal: list[np.ndarray]  # terminal[k-1][node]: pattern index ending at that node, or -1

    @property
    def depth(self) -> int:
        return len(self.terminal)

    def index(self, level: int) -> KeyIndex:
        """Hash index of the level's keys, built once per trie."""
        if not hasattr(self, "_indexes"):
            self._indexes = {}
        if level not in self._indexes:
            self._indexes[level] = KeyIndex(self.level_keys[level - 1])
        return self._indexes[level]


def build_trie(patterns: PatternSet, vocab: int) -> PatternTrie:
    vocab = max(int(vocab), int(patterns.values.max()) + 1 if len(patterns.values) else 1)
    mat, lens = patterns.padded(-1), patterns.lengths
    idx = np.arange(len(patterns), dtype=np.int64)
    item_node = np.full(vocab, -1, dtype=np.int64)
    level_keys, terminal = [], []
    node = None
    for k in range(1, int(lens.max()) + 1 if len(lens) else 1):
        sel = lens >= k
        keys = mat[sel, k - 1] if k == 1 else node[sel] * vocab + mat[sel, k - 1]
        uniq = sorted_unique(keys)
        full_node = np.full(len(patterns), -1, dtype=np.int64)
        full_node[sel] = np.searchsorted(uniq, keys)
        node = full_node
        if k == 1:
            item_node[uniq] = np.arange(len(uniq))
        ends = lens == k
        term = np.full(len(uniq), -1, dtype=np.int64)
        term[node[ends]] = idx[ends]
        level_keys.append(uniq)
        terminal.append(term)
    item_used = np.zeros(vocab, dtype=bool)
    item_used[patterns.values] = True
    return PatternTrie(vocab, item_node, item_used, level_keys, terminal)


def match_shard(sequences: Sequence[np.ndarray], trie: PatternTrie, alpha: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (local sequence index, pattern index) pairs of containment, sorted."""
    c = build_corpus(sequences)
    z = np.zeros(0, dtype=np.int64)
    if len(c.items) == 0 or trie.depth == 0:
        return z, z.copy()
    # ids beyond the trie's vocabulary never match (and must not alias node * vocab + item keys)
    usable = np.zeros(max(trie.vocab, int(c.items.max()) + 1), dtype=bool)
    usable[:trie.vocab] = trie.item_used
    start = np.flatnonzero(usable[c.items] & (trie.item_node[np.minimum(c.items, trie.vocab - 1)] >= 0))
    end, node = start, trie.item_node[c.items[start]]
    found_seq, found_pat = [], []
    for k in range(1, trie.depth + 1):
        if k > 1:
            new_start, new_end, new_node = [], [], []
            for lo, hi in expansion_chunks(c, start, end, alpha):
                parent, pos = expand(c, start[lo:hi], end[lo:hi], alpha, usable)
                parent += lo
                nn = trie.index(k).find(node[parent] * trie.vocab + c.items[pos])
                hit = nn >= 0
                new_start.append(start[parent[hit]]), new_end.append(pos[hit]), new_node.append(nn[hit])
            start, end, node = (np.concatenate(a) if a else z for a in (new_start, new_end, new_node))
        if len(start) == 0:
            break
        pat = trie.terminal[k - 1][node]
        hit = pat >= 0
        found_seq.append(c.seq_of[start[hit]]), found_pat.append(pat[hit])
    seq = np.concatenate(found_seq) if found_seq else z
    pat = np.concatenate(found_pat) if found_pat else z
    n_pat = max(len(trie.terminal[-1]), int(pat.max()) + 1 if len(pat) else 1)
    combined = sorted_unique(seq * n_pat + pat)
    return combined // n_pat, combined % n_pat


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def draw_scores(seed: int, users: np.ndarray, pattern_ids: np.ndarray) -> np.ndarray:
    salt = _mix64(np.array([seed], dtype=np.int64).view(np.uint64))
    return _mix64(_mix64(users.view(np.uint64) ^ salt) ^ pattern_ids.astype(np.uint64))


def select_pairs(users: np.ndarray, seq_idx: np.ndarray, pat_idx: np.ndarray, max_pairs: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the `max_pairs` lowest-score patterns per sequence; returns (seq_idx, pat_idx) sorted."""
    if len(seq_idx) == 0:
        return seq_idx, pat_idx
    score = draw_scores(seed, users[seq_idx].astype(np.int64), pat_idx)
    order = np.lexsort((pat_idx, score, seq_idx))
    s = seq_idx[order]
    group_start = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1])
    rank = np.arange(len(s)) - np.repeat(group_start, np.diff(np.append(group_start, len(s))))
    keep = order[rank < max_pairs]
    combined = np.sort(seq_idx[keep] * (int(pat_idx.max()) + 1) + pat_idx[keep])
    return combined // (int(pat_idx.max()) + 1), combined % (int(pat_idx.max()) + 1)


@dataclasses.dataclass
class Pairs:
    user: np.ndarray  # user id per pair, in the order of the input sequences
    pattern_id: np.ndarray  # row index into the pattern set
    contained: int  # (sequence, pattern) containments before the per-user cap
    users_without_pairs: np.ndarray  # user ids whose sequence contains no pattern

    def __len__(self) -> int:
        return len(self.user)


def pair_patterns(sequences: Sequence, users: Sequence[int], patterns: PatternSet, alpha: int,
                  max_pairs: int = 10, seed: int = 0, workers: int | None = None) -> Pairs:
    """Pairs (user, pattern id) of the patterns each sequence contains, at most `max_pairs` per user."""
    if max_pairs < 1:
        raise ConfigError(f"mining: max_pairs_per_sequence must be >= 1 (got {max_pairs})")
    seqs = as_int_sequences(sequences)
    users = np.asarray(users, dtype=np.int64)
    if len(users) != len(seqs):
        raise ConfigError(f"mining: {len(users)} user ids for {len(seqs)} sequences")
    if workers:
        from dr4sr.mining.distributed import pair_ray
        seq_idx, pat_idx, contained = pair_ray(seqs, users, patterns, alpha, max_pairs, seed, int(workers))
    else:
        trie = build_trie(patterns, vocab_size(seqs))
        seq_idx, pat_idx = match_shard(seqs, trie, alpha)
        contained = len(seq_idx)
        seq_idx, pat_idx = select_pairs(users, seq_idx, pat_idx, max_pairs, seed)
    has_pair = np.zeros(len(seqs), dtype=bool)
    has_pair[seq_idx] = True
    return Pairs(users[seq_idx], pat_idx, int(contained), users[~has_pair])
