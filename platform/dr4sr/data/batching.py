"""Training batches: length-grouped, padded to each batch's own longest row, sharded for DDP.

Sequences average 6-10 items; padding every batch to 50 made an epoch ~7x slower, so rows are
grouped by length inside shuffled mega-batches. Every rank builds the same global batches from the
same seed and takes rows `rank::world` of each, so DDP sees the same global batch as one process.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Literal, Sequence

import numpy as np
import torch

MEGA_BATCH = 50  # batches per length-sorted group: enough locality, still well shuffled


@dataclasses.dataclass
class Batch:
    inputs: torch.Tensor  # (B, L) item ids, 0 = padding
    lengths: torch.Tensor  # (B,) real lengths of `inputs`
    targets: torch.Tensor  # (B, L) next item per position (seq2seq) or (B, 1) for "last"; 0 = none
    weights: torch.Tensor | None = None  # per-target weights, same shape as targets
    rows: torch.Tensor | None = None  # index of each row in the training data
    fixed: torch.Tensor | None = None  # (B,) bool: rows the DR4SR+ personalizer never re-weights

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.inputs), move(self.lengths), move(self.targets), move(self.weights), move(self.rows),
                     move(self.fixed))


def pad_sequences(seqs: Sequence[np.ndarray], side: Literal["right", "left"] = "right",
                  length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest row (or `length`), keeping the most recent items when cutting."""
    lengths = np.fromiter((min(len(s), length or len(s)) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(length or (lengths.max() if len(lengths) else 1))
    out = np.zeros((len(seqs), max(width, 1)), dtype=np.int64)
    for i, (s, n) in enumerate(zip(seqs, lengths)):
        if n:
            if side == "right":
                out[i, :n] = s[len(s) - n:]
            else:
                out[i, width - n:] = s[len(s) - n:]
    return out, lengths


class TrainBatcher:
    """Iterates training batches over `sequences` for one epoch at a time.

    mode "seq2seq": row = one sequence, input s[:-1], targets s[1:] (every position is a target).
    mode "last": row = one prefix, input s[:t] (left-padded), target s[t], for every t >= 1.
    """

    def __init__(self, sequences: Sequence[np.ndarray], batch_size: int, mode: Literal["seq2seq", "last"] = "seq2seq",
                 max_len: int = 50, row_weights: np.ndarray | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, row_fixed: np.ndarray | None = None):
        if batch_size < world_size:
            raise ValueError(f"batch_size {batch_size} is smaller than the number of workers {world_size}")
        self.sequences = [np.asarray(s, dtype=np.int64)[-(max_len + 1):] for s in sequences]
        self.batch_size, self.mode, self.max_len = batch_size, mode, max_len
        self.row_weights = row_weights
        self.row_fixed = None if row_fixed is None else np.asarray(row_fixed, dtype=bool)  # per sequence
        self.seed, self.rank, self.world_size = seed, rank, world_size
        lens = np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=len(self.sequences))
        usable = np.nonzero(lens >= 2)[0]
        self.skipped_rows = int(len(lens) - len(usable))  # rows with no target (length < 2)
        if mode == "seq2seq":
            self.row_seq, self.row_end = usable, lens[usable]
        else:
            counts = lens[usable] - 1
            self.row_seq = np.repeat(usable, counts)
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            self.row_end = np.arange(len(self.row_seq)) - starts + 1  # predict s[end] from s[:end]
        self.row_len = np.minimum(self.row_end if mode == "last" else self.row_end - 1, max_len)

    @property
    def num_rows(self) -> int:
        return len(self.row_seq)

    def num_targets(self) -> int:
        return int(self.row_len.sum()) if self.mode == "seq2seq" else self.num_rows

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_rows)
        group = self.batch_size * MEGA_BATCH
        batches = []
        for start in range(0, len(order), group):
            chunk = order[start:start + group]
            chunk = chunk[np.argsort(self.row_len[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        # every rank needs at least one row per batch: fold a too-small tail into its neighbour
        if len(batches) > 1 and len(batches[-1]) < self.world_size:
            batches[-2] = np.concatenate([batches[-2], batches.pop()])
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    def __len__(self) -> int:
        return max(1, -(-self.num_rows // self.batch_size))

    def epoch(self, epoch: int) -> Iterator[Batch]:
        for rows in self.global_batches(epoch):
            yield self.collate(rows[self.rank::self.world_size])

    def collate(self, rows: np.ndarray) -> Batch:
        if self.mode == "seq2seq":
            seqs = [self.sequences[self.row_seq[r]][: self.row_end[r]] for r in rows]
            full, lengths = pad_sequences(seqs, "right")
            lengths = np.maximum(lengths - 1, 1)
            inputs, targets = full[:, :-1], full[:, 1:]
            if inputs.shape[1] > self.max_len:  # keep the most recent max_len positions
                inputs, targets = inputs[:, -self.max_len:], targets[:, -self.max_len:]
        else:
            prefixes = [self.sequences[self.row_seq[r]][: self.row_end[r]] for r in rows]
            inputs, lengths = pad_sequences(prefixes, "left", None)
            inputs = inputs[:, -self.max_len:]
            lengths = np.minimum(lengths, self.max_len)
            targets = np.array([[self.sequences[self.row_seq[r]][self.row_end[r]]] for r in rows], dtype=np.int64)
        weights = None
        if self.row_weights is not None:
            w = self.row_weights[self.row_seq[rows]].astype(np.float32)
            weights = torch.from_numpy(np.where(targets > 0, w[:, None], 0.0).astype(np.float32))
        fixed = None if self.row_fixed is None else torch.from_numpy(self.row_fixed[self.row_seq[rows]])
        return Batch(torch.from_numpy(inputs), torch.from_numpy(lengths), torch.from_numpy(targets),
                     weights, torch.from_numpy(np.asarray(rows, dtype=np.int64)), fixed)
