"""Pre-training pairs (source sequence, target pattern) and their length-grouped batches.

Sources are the users' training sequences (`splits.train`, <= 48 items) and targets the mined
patterns paired to them. Both are held as padded matrices so a batch is a few fancy-index ops.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np
import torch

from dr4sr.data.batching import MEGA_BATCH, pad_sequences
from dr4sr.errors import DR4SRError


@dataclasses.dataclass
class PairData:
    sources: np.ndarray  # (n_users, Ls) right-padded training sequences
    source_len: np.ndarray  # (n_users,)
    patterns: np.ndarray  # (n_patterns, Lp) right-padded patterns
    pattern_len: np.ndarray  # (n_patterns,)
    pair_row: np.ndarray  # (n_pairs,) row of the source (user position in the splits)
    pair_pattern: np.ndarray  # (n_pairs,) row of the pattern

    def __len__(self) -> int:
        return len(self.pair_row)

    def subset(self, idx: np.ndarray) -> "PairData":
        return dataclasses.replace(self, pair_row=self.pair_row[idx], pair_pattern=self.pair_pattern[idx])

    def split(self, fraction: float, seed: int) -> tuple["PairData", "PairData"]:
        """(train, valid): a seeded hold-out of `fraction` of the pairs (at least one when fraction > 0)."""
        n = len(self)
        n_valid = 0 if fraction <= 0 else max(1, int(round(n * fraction)))
        if n_valid >= n:
            raise DR4SRError(f"{n} pre-training pairs are too few to hold out {fraction:.0%} for validation")
        perm = np.random.default_rng([seed, 7]).permutation(n)
        return self.subset(np.sort(perm[n_valid:])), self.subset(np.sort(perm[:n_valid]))


def build_pair_data(train: Sequence[np.ndarray], users: np.ndarray, patterns: Sequence[np.ndarray],
                    pair_user: np.ndarray, pair_pattern: np.ndarray) -> PairData:
    """`pair_user` holds user ids (as in the mine artifact's pairs.parquet), mapped to rows here."""
    users = np.asarray(users, dtype=np.int64)
    order = np.argsort(users, kind="stable")
    pos = np.searchsorted(users[order], pair_user)
    pos = np.minimum(pos, len(users) - 1)
    rows = order[pos]
    bad = users[rows] != pair_user
    if bad.any():
        raise DR4SRError(f"pairs.parquet: user id {int(np.asarray(pair_user)[bad][0])} is not in the splits")
    pair_pattern = np.asarray(pair_pattern, dtype=np.int64)
    if len(pair_pattern) and (pair_pattern.min() < 0 or pair_pattern.max() >= len(patterns)):
        raise DR4SRError(f"pairs.parquet: pattern_id out of range 0..{len(patterns) - 1}")
    src, src_len = pad_sequences(list(train), "right")
    pat, pat_len = pad_sequences(list(patterns), "right")
    return PairData(src, src_len, pat, pat_len, rows.astype(np.int64), pair_pattern)


@dataclasses.dataclass
class PairBatch:
    src: torch.Tensor  # (B, Ls)
    dec_in: torch.Tensor  # (B, T+1): BOS, pattern
    dec_out: torch.Tensor  # (B, T+1): pattern, EOS; 0 = no target
    pattern: torch.Tensor  # (B, T) the target pattern for the diversity promoter

    def to(self, device) -> "PairBatch":
        return PairBatch(*(t.to(device, non_blocking=True) for t in dataclasses.astuple(self)))


class PairBatcher:
    """Same global batches on every rank from the same seed; rank r takes rows r::world (as TrainBatcher)."""

    def __init__(self, data: PairData, batch_size: int, bos: int, eos: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if batch_size < world_size:
            raise DR4SRError(f"pretrain.batch_size {batch_size} is smaller than the number of workers {world_size}")
        self.data, self.batch_size, self.bos, self.eos = data, batch_size, bos, eos
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.row_len = data.source_len[data.pair_row]

    def __len__(self) -> int:
        return max(1, -(-len(self.data) // self.batch_size))

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.data)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        group = self.batch_size * MEGA_BATCH
        batches = []
        for start in range(0, n, group):  # sort by source length inside mega-batches: less padding
            chunk = order[start:start + group]
            chunk = chunk[np.argsort(self.row_len[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if len(batches) > 1 and len(batches[-1]) < self.world_size:
            batches[-2] = np.concatenate([batches[-2], batches.pop()])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def epoch(self, epoch: int) -> Iterator[PairBatch]:
        for rows in self.global_batches(epoch):
            mine = rows[self.rank::self.world_size]
            if len(mine):
                yield self.collate(mine)

    def collate(self, rows: np.ndarray) -> PairBatch:
        d = self.data
        users, pats = d.pair_row[rows], d.pair_pattern[rows]
        ls, lp = d.source_len[users], d.pattern_len[pats]
        src = d.sources[users][:, : max(int(ls.max()), 1)]
        t = max(int(lp.max()), 1)
        pattern = d.patterns[pats][:, :t]
        b = len(rows)
        dec_in = np.zeros((b, t + 1), dtype=np.int64)
        dec_in[:, 0] = self.bos
        dec_in[:, 1:] = pattern
        dec_out = np.zeros((b, t + 1), dtype=np.int64)
        dec_out[:, :t] = pattern
        dec_out[np.arange(b), lp] = self.eos
        return PairBatch(torch.from_numpy(src), torch.from_numpy(dec_in), torch.from_numpy(dec_out),
                         torch.from_numpy(np.ascontiguousarray(pattern)))
