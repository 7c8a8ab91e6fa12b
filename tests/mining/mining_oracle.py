"""Brute-force reference for the mining semantics, small inputs only."""
from __future__ import annotations

import itertools
from collections import Counter


def occurring_patterns(seq, alpha: int, max_len: int) -> set[tuple[int, ...]]:
    """Every pattern of length 2..max_len with an occurrence whose last - first index <= alpha - 1."""
    seq = [int(x) for x in seq]
    out = set()
    for i in range(len(seq)):
        window = seq[i + 1:i + alpha]
        for k in range(1, max_len):
            for comb in itertools.combinations(window, k):
                out.add((seq[i],) + comb)
    return out


def brute_mine(seqs, alpha: int, beta: int, max_len: int | None = None) -> dict[tuple[int, ...], int]:
    max_len = alpha if max_len is None else min(alpha, max_len)
    counts = Counter()
    for s in seqs:
        counts.update(occurring_patterns(s, alpha, max_len))
    return {p: n for p, n in counts.items() if n >= beta}
