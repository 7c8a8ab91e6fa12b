"""One interface over the mining engines: `native` (ours, numpy level-wise) and `seq2pat` (reference).

Semantics (both engines, checked against each other and a brute-force oracle in the tests):
a pattern is a subsequence (gaps allowed, repeated items allowed) of length 2..min(α, max_pattern_len)
with an occurrence whose last index − first index ≤ α − 1; its support is the number of distinct
sequences containing it; patterns with support ≥ β are kept. This is exactly
`Seq2Pat(seqs, max_span=α).get_patterns(min_frequency=β)` (seq2pat 2.0 turns max_span=α into
the constraint 1 <= span(index) <= α − 1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.mining.native import mine_native
from dr4sr.mining.patterns import PatternSet, as_int_sequences, validate_params

ENGINES = ("native", "seq2pat")


def mine(sequences: Sequence, alpha: int, beta: int, engine: str = "native",
         max_pattern_len: int | None = None, workers: int | None = None) -> PatternSet:
    """Mine frequent span-constrained patterns; the result is in canonical order.

    `workers`: None or 0 runs in this process; N >= 1 runs the native engine on Ray Data with N blocks.
    """
    max_len = validate_params(alpha, beta, max_pattern_len)
    seqs = as_int_sequences(sequences)
    if engine == "native":
        if workers:
            from dr4sr.mining.distributed import mine_ray
            return mine_ray(seqs, alpha, beta, max_len, num_blocks=int(workers))
        return mine_native(seqs, alpha, beta, max_len)
    if engine == "seq2pat":
        if workers:
            raise ConfigError("mining: the seq2pat engine runs in one process; use --engine native with --workers")
        return mine_seq2pat(seqs, alpha, beta, max_len)
    raise ConfigError(f"mining: unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")


def mine_patterns(sequences: Sequence, alpha: int, beta: int, engine: str = "native",
                  max_pattern_len: int | None = None,
                  workers: int | None = None) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Like `mine`, as (pattern tuples, supports) in canonical order (length, then lexicographic)."""
    result = mine(sequences, alpha, beta, engine, max_pattern_len, workers)
    return result.tuples(), result.supports


def mine_seq2pat(seqs: list[np.ndarray], alpha: int, beta: int, max_len: int) -> PatternSet:
    """The reference: seq2pat's C++ miner (exact mode)."""
    try:
        from sequential.seq2pat import Seq2Pat
    except ImportError as exc:  # pragma: no cover - seq2pat is a pinned dependency
        raise DR4SRError(f"mining: the seq2pat engine needs the `seq2pat` package ({exc})") from None
    # seq2pat rejects empty sequences; they hold no pattern, so dropping them keeps every support
    lists = [s.tolist() for s in seqs if len(s)]
    if any(min(s) < 1 for s in lists):
        raise DR4SRError("mining: the seq2pat engine needs item ids >= 1 (0 is padding)")
    if len(lists) < beta:  # seq2pat raises when β exceeds the row count; the answer is simply empty
        return PatternSet.empty()
    miner = Seq2Pat(lists, max_span=int(alpha))
    # Above 500,000 rows seq2pat silently switches to approximate batch mining; force exact mode.
    miner.batch_size = None
    rows = miner.get_patterns(min_frequency=int(beta))
    rows = [r for r in rows if len(r) - 1 <= max_len]
    return PatternSet.from_tuples((r[:-1] for r in rows), (r[-1] for r in rows))
