"""A small planted-pattern fixture: noise sequences with known patterns inserted, and their pairs."""
from __future__ import annotations

import numpy as np

from dr4sr.data.splits import Splits
from dr4sr.regen.config import PretrainConfig, RegeneratorConfig
from dr4sr.regen.pairs import PairData, build_pair_data

PLANTED = [(1, 2, 3), (4, 5, 6), (7, 8, 9, 10), (11, 12)]
NUM_ITEMS = 40


def planted_data(num_users: int = 600, seed: int = 0, two_fraction: float = 0.3):
    """(train sequences, user ids, planted pattern ids per user)."""
    rng = np.random.default_rng(seed)
    seqs, planted = [], []
    for _ in range(num_users):
        n_pat = 2 if rng.random() < two_fraction else 1
        chosen = rng.choice(len(PLANTED), size=n_pat, replace=False)
        noise = list(rng.choice(np.arange(13, NUM_ITEMS + 1), size=rng.integers(3, 8), replace=False))
        for p in chosen:
            at = int(rng.integers(0, len(noise) + 1))
            noise[at:at] = list(PLANTED[p])
        seqs.append(np.asarray(noise, dtype=np.int64))
        planted.append(sorted(int(p) for p in chosen))
    users = np.arange(100, 100 + num_users, dtype=np.int64)  # ids differ from row positions on purpose
    return seqs, users, planted


def planted_pairs(seqs, users, planted) -> PairData:
    pair_user = np.asarray([users[i] for i, ps in enumerate(planted) for _ in ps], dtype=np.int64)
    pair_pattern = np.asarray([p for ps in planted for p in ps], dtype=np.int64)
    pats = [np.asarray(p, dtype=np.int64) for p in PLANTED]
    return build_pair_data(seqs, users, pats, pair_user, pair_pattern)



SMALL = RegeneratorConfig(hidden_size=32, inner_size=64, dropout=0.1, k=3, max_positions=20)
# 20 epochs: the memories specialise at a run-dependent epoch (9-16 seen); 16 left some dropout streams short
FAST = PretrainConfig(max_epochs=20, batch_size=64, lr=3e-3, patience=50, device="cpu")


def planted_splits(seqs, users) -> Splits:
    n = len(seqs)
    return Splits(users=users, train=seqs, train_full=seqs, valid_target=np.ones(n, dtype=np.int64),
                  test_target=np.ones(n, dtype=np.int64), num_items=NUM_ITEMS, max_len=50,
                  fingerprint=f"planted-{n}")
