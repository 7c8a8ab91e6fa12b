"""Ray Data mining and pairing give identical results for any number of blocks."""
from __future__ import annotations

import random

import numpy as np
import pytest

from dr4sr.mining.distributed import shard_bounds
from dr4sr.mining.engines import mine
from dr4sr.mining.pairing import pair_patterns


def corpus(seed=0, n=300):
    rng = random.Random(seed)
    seqs = [np.array([rng.randint(1, 15) for _ in range(rng.randint(1, 20))]) for _ in range(n)]
    return seqs, np.arange(1000, 1000 + n, dtype=np.int64)


def test_shard_bounds_cover_all_users():
    assert shard_bounds(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]


def test_mining_is_shard_invariant(ray_session):
    seqs, _ = corpus()
    reference = mine(seqs, 4, 3)
    assert len(reference) > 100
    for workers in (1, 2, 4):
        assert mine(seqs, 4, 3, workers=workers).equals(reference), workers


def test_pairing_is_shard_invariant(ray_session):
    seqs, users = corpus(1)
    patterns = mine(seqs, 4, 3)
    reference = pair_patterns(seqs, users, patterns, 4, max_pairs=5, seed=3)
    for workers in (1, 2, 4):
        got = pair_patterns(seqs, users, patterns, 4, max_pairs=5, seed=3, workers=workers)
        assert np.array_equal(got.user, reference.user)
        assert np.array_equal(got.pattern_id, reference.pattern_id)
        assert got.contained == reference.contained
        assert np.array_equal(got.users_without_pairs, reference.users_without_pairs)


def test_seq2pat_engine_refuses_workers():
    from dr4sr.errors import ConfigError

    with pytest.raises(ConfigError, match="native"):
        mine([[1, 2]], 2, 1, engine="seq2pat", workers=2)
