"""Head and tail users and items, and the sequences MELT encodes for them (numpy only).

Split as in the MELT authors' code: a user is a tail user when their training sequence is no longer than
the `pareto` quantile of training lengths; an item is a tail item when it occurs no more often than the
`pareto - item_pareto_offset` quantile of the counts of the items that occur (an item absent from
training is a tail item). Quantiles interpolate linearly (numpy's default, the authors' too).

An item's contexts: every training occurrence gives the prefix that ends at it and, for sequences of more
than one item, the suffix that starts at it read backwards (so it too ends at the item), each cut to its
last `max_len` items.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class LongTailSplit:
    user_threshold: float
    item_threshold: float
    lengths: np.ndarray  # training length per user
    tail_user: np.ndarray  # bool per user
    counts: np.ndarray  # occurrences per item id (index 0: padding, always 0)
    tail_item: np.ndarray  # bool per item id (index 0 False)

    @property
    def head_users(self) -> np.ndarray:
        return np.flatnonzero(~self.tail_user)

    @property
    def head_items(self) -> np.ndarray:
        head = ~self.tail_item
        head[0] = False
        return np.flatnonzero(head)

    def summary(self) -> dict:
        return {"user_threshold": self.user_threshold, "item_threshold": self.item_threshold,
                "head_users": int((~self.tail_user).sum()), "tail_users": int(self.tail_user.sum()),
                "head_items": len(self.head_items), "tail_items": int(self.tail_item.sum())}


def split_head_tail(sequences: Sequence[np.ndarray], num_items: int, pareto: float,
                    item_pareto_offset: float) -> LongTailSplit:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    user_threshold = float(np.quantile(lengths, pareto))
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences] or [np.zeros(0, np.int64)])
    counts = np.bincount(flat, minlength=num_items + 1)
    counts[0] = 0
    present = counts[1:][counts[1:] > 0]
    item_threshold = float(np.quantile(present, pareto - item_pareto_offset))
    tail_item = counts <= item_threshold
    tail_item[0] = False
    return LongTailSplit(user_threshold, item_threshold, lengths, lengths <= user_threshold, counts, tail_item)


def padded(sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Right-padded (users x longest) matrix of the sequences."""
    width = max(1, max((len(s) for s in sequences), default=1))
    out = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        out[i, :len(s)] = s
    return out


def windows(matrix: np.ndarray, rows: np.ndarray, start: np.ndarray, step: np.ndarray, length: np.ndarray,
            side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Row r's items matrix[rows[r], start[r] + step[r] * j] for j < length[r], padded on `side` with 0:
    (sequences, lengths), as a backbone reads them."""
    length = np.asarray(length, dtype=np.int64)
    width = max(1, int(length.max(initial=1)))
    j = np.arange(width)[None, :]
    if side == "left":  # the last item at the last column
        j = j - (width - length[:, None])
    idx = np.asarray(start)[:, None] + np.asarray(step)[:, None] * j
    real = (j >= 0) & (j < length[:, None])
    vals = matrix[np.asarray(rows)[:, None], np.clip(idx, 0, matrix.shape[1] - 1)]
    return np.where(real, vals, 0), length


class ItemContexts:
    """All contexts of all items, grouped by item: context k is (user, position of the item, direction)."""

    def __init__(self, sequences: Sequence[np.ndarray], matrix: np.ndarray, num_items: int, max_len: int):
        self.matrix, self.max_len = matrix, max_len
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        user = np.repeat(np.arange(len(lengths)), lengths)
        pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        multi = lengths[user] > 1
        self.user = np.concatenate([user, user[multi]])
        self.pos = np.concatenate([pos, pos[multi]])
        self.step = np.concatenate([np.ones(len(user), np.int64), -np.ones(int(multi.sum()), np.int64)])
        self.seq_len = lengths[self.user]
        item = matrix[self.user, self.pos]
        order = np.argsort(item, kind="stable")
        self.user, self.pos, self.step, self.seq_len = (a[order] for a in (self.user, self.pos, self.step,
                                                                         self.seq_len))
        self.count = np.bincount(item, minlength=num_items + 1)  # contexts per item
        self.start = np.concatenate([[0], np.cumsum(self.count)[:-1]])

    def lengths(self, idx: np.ndarray) -> np.ndarray:
        forward = np.minimum(self.pos[idx] + 1, self.max_len)
        backward = np.minimum(self.seq_len[idx] - self.pos[idx], self.max_len)
        return np.where(self.step[idx] > 0, forward, backward)

    def build(self, idx: np.ndarray, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
        """The contexts `idx` as padded sequences and their lengths."""
        length = self.lengths(idx)
        first = np.where(self.step[idx] > 0, self.pos[idx] - length + 1, self.pos[idx] + length - 1)
        return windows(self.matrix, self.user[idx], first, self.step[idx], length, side)
