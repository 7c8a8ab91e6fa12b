"""The paper's protocol split: truncate to the last `max_len` items, then leave-one-out.

- `train[u]`: the training sequence (<= max_len - 2 items), seq-to-seq targets inside it.
- `valid_target[u]`, `test_target[u]`: second-to-last and last item.
- `train_full[u]`: the untruncated sequence minus its last two items (input to pattern mining).
Validation ranks with `train[u]` as history; test ranks with `train[u] + [valid_target[u]]`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dr4sr.data.sequences import SequenceData


@dataclasses.dataclass
class Splits:
    users: np.ndarray
    train: list[np.ndarray]
    train_full: list[np.ndarray]
    valid_target: np.ndarray
    test_target: np.ndarray
    num_items: int
    max_len: int
    fingerprint: str

    @property
    def num_users(self) -> int:
        return len(self.train)

    def history(self, stage: str) -> list[np.ndarray]:
        """Input sequence (and masked history) for evaluation at `stage` in {'valid', 'test'}."""
        if stage == "valid":
            return self.train
        if stage == "test":
            return [np.append(t, v) for t, v in zip(self.train, self.valid_target)]
        raise ValueError(f"unknown evaluation stage {stage!r}; expected 'valid' or 'test'")

    def target(self, stage: str) -> np.ndarray:
        return self.valid_target if stage == "valid" else self.test_target


def leave_one_out(data: SequenceData, max_len: int = 50) -> Splits:
    if max_len < 3:
        raise ValueError(f"max_len must be >= 3 (got {max_len})")
    train, train_full, valid, test = [], [], [], []
    for seq in data.sequences:
        cut = seq[-max_len:]
        train.append(cut[:-2])
        train_full.append(seq[:-2])
        valid.append(cut[-2])
        test.append(cut[-1])
    return Splits(
        users=data.users,
        train=train,
        train_full=train_full,
        valid_target=np.asarray(valid, dtype=np.int64),
        test_target=np.asarray(test, dtype=np.int64),
        num_items=data.num_items,
        max_len=max_len,
        fingerprint=f"{data.fingerprint}:L{max_len}",
    )
