"""Tiny datasets with learnable next-item structure (chains), shared by the fixtures and module-scoped setups."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_chain_sequences(num_users: int = 60, num_items: int = 40, min_len: int = 5, max_len: int = 12,
                         seed: int = 0) -> list[list[int]]:
    """Each user walks item chains i -> i+1 -> ... (mod num_items): next-item structure a model can learn."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(num_users):
        start = int(rng.integers(0, num_items))
        n = int(rng.integers(min_len, max_len + 1))
        seqs.append([(start + j) % num_items + 1 for j in range(n)])
    return seqs


def write_text_dataset(path: Path, seqs: list[list[int]]) -> Path:
    path.write_text("".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(seqs, start=1)))
    return path
