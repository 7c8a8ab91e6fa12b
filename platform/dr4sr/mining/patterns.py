"""The mined pattern set and the checks shared by every engine.

A `PatternSet` stores patterns flat (values + offsets, like Arrow's list<int64>) so that a few
hundred thousand patterns cost a few arrays, not a few hundred thousand Python tuples.
Canonical order, used by every engine and by `patterns.parquet`: by length, then lexicographic.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from dr4sr.errors import ConfigError, DR4SRError


@dataclasses.dataclass
class PatternSet:
    values: np.ndarray  # int64, all pattern items concatenated
    offsets: np.ndarray  # int64, len(patterns) + 1; pattern i = values[offsets[i]:offsets[i+1]]
    supports: np.ndarray  # int64, number of distinct sequences containing pattern i

    def __len__(self) -> int:
        return len(self.supports)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tuples(self) -> list[tuple[int, ...]]:
        flat = self.values.tolist()
        offs = self.offsets.tolist()
        return [tuple(flat[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1)]

    def padded(self, fill: int = -1) -> np.ndarray:
        """(n, max_len) int64 matrix, rows padded with `fill`."""
        n, width = len(self), int(self.lengths.max()) if len(self) else 0
        out = np.full((n, width), fill, dtype=np.int64)
        if n:
            row = np.repeat(np.arange(n), self.lengths)
            col = np.arange(len(self.values)) - np.repeat(self.offsets[:-1], self.lengths)
            out[row, col] = self.values
        return out

    def length_histogram(self) -> dict[int, int]:
        lens, counts = np.unique(self.lengths, return_counts=True)
        return {int(k): int(v) for k, v in zip(lens, counts)}

    @classmethod
    def empty(cls) -> "PatternSet":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, np.zeros(1, dtype=np.int64), z.copy())

    @classmethod
    def from_tuples(cls, patterns: Iterable[Sequence[int]], supports: Iterable[int]) -> "PatternSet":
        """Build from any order; the result is in canonical order."""
        pairs = sorted(((tuple(int(x) for x in p), int(s)) for p, s in zip(patterns, supports)),
                       key=lambda ps: (len(ps[0]), ps[0]))
        if not pairs:
            return cls.empty()
        lens = np.fromiter((len(p) for p, _ in pairs), dtype=np.int64, count=len(pairs))
        offsets = np.zeros(len(pairs) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        values = np.fromiter((x for p, _ in pairs for x in p), dtype=np.int64, count=int(offsets[-1]))
        supports_arr = np.fromiter((s for _, s in pairs), dtype=np.int64, count=len(pairs))
        return cls(values, offsets, supports_arr)

    @classmethod
    def concat_levels(cls, levels: list[tuple[np.ndarray, np.ndarray]]) -> "PatternSet":
        """Join per-length blocks [(matrix (n_k, k) in lexicographic order, supports)]."""
        levels = [(m, s) for m, s in levels if len(s)]
        if not levels:
            return cls.empty()
        values = np.concatenate([m.reshape(-1) for m, _ in levels]).astype(np.int64, copy=False)
        lens = np.concatenate([np.full(len(s), m.shape[1], dtype=np.int64) for m, s in levels])
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return cls(values, offsets, np.concatenate([s for _, s in levels]).astype(np.int64))

    def equals(self, other: "PatternSet") -> bool:
        return (np.array_equal(self.offsets, other.offsets) and np.array_equal(self.values, other.values)
                and np.array_equal(self.supports, other.supports))


def validate_params(alpha: int, beta: int, max_pattern_len: int | None = None) -> int:
    """Check α, β and the length cap; return the effective maximum pattern length."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"mining: {name} must be an integer (got {value!r})")
    if alpha < 2:
        raise ConfigError(f"mining: alpha (maximum span) must be >= 2, got {alpha}: "
                          "a pattern has at least 2 items that fit in alpha consecutive positions")
    if beta < 1:
        raise ConfigError(f"mining: beta (minimum support) must be >= 1, got {beta}")
    if max_pattern_len is None:
        return int(alpha)
    if isinstance(max_pattern_len, bool) or not isinstance(max_pattern_len, (int, np.integer)) \
            or max_pattern_len < 2:
        raise ConfigError(f"mining: max_pattern_len must be an integer >= 2 or unset (got {max_pattern_len!r})")
    return int(min(alpha, max_pattern_len))


def as_int_sequences(sequences: Sequence) -> list[np.ndarray]:
    """Validate the mining input: a non-empty list of sequences of non-negative integer item ids."""
    if sequences is None or len(sequences) == 0:
        raise DR4SRError("mining: the sequence list is empty; nothing to mine "
                         "(is the dataset empty, or were all users filtered out?)")
    out = [s if isinstance(s, np.ndarray) and s.dtype == np.int64 else np.asarray(s) for s in sequences]
    i64 = np.dtype(np.int64)
    bad = [i for i, a in enumerate(out) if a.ndim != 1 or (a.dtype != i64 and a.size
                                                             and not np.issubdtype(a.dtype, np.integer))]
    if bad:
        raise DR4SRError(f"mining: sequence {bad[0]} is not a flat list of integer item ids")
    out = [a if a.dtype == i64 else a.astype(np.int64) for a in out]
    nonempty = [a for a in out if a.size]
    if nonempty:
        lowest = int(np.concatenate(nonempty).min())
        if lowest < 0:
            first = next(i for i, a in enumerate(out) if a.size and a.min() < 0)
            raise DR4SRError(f"mining: sequence {first} holds a negative item id ({lowest} is the smallest)")
    return out
