"""Pairing: containment under the span rule, the per-user cap, a deterministic seeded draw."""
from __future__ import annotations

import random

import numpy as np
import pytest
from mining_oracle import occurring_patterns

from dr4sr.errors import DR4SRError
from dr4sr.mining.engines import mine
from dr4sr.mining.pairing import build_trie, match_shard, pair_patterns
from dr4sr.mining.patterns import PatternSet


def random_corpus(seed, n=150, vocab=12, max_len=15):
    rng = random.Random(seed)
    seqs = [np.array([rng.randint(1, vocab) for _ in range(rng.randint(1, max_len))]) for _ in range(n)]
    users = np.array(rng.sample(range(10_000, 99_999), n), dtype=np.int64)
    return seqs, users


@pytest.mark.parametrize("seed, alpha", [(0, 3), (1, 5), (2, 4)])
def test_containment_matches_brute_force(seed, alpha):
    seqs, _ = random_corpus(seed)
    patterns = mine(seqs, alpha, 3)
    tuples = patterns.tuples()
    seq_idx, pat_idx = match_shard(seqs, build_trie(patterns, 13), alpha)
    got = set(zip(seq_idx.tolist(), pat_idx.tolist()))
    index = {p: i for i, p in enumerate(tuples)}
    expected = {(n, index[p]) for n, s in enumerate(seqs) for p in occurring_patterns(s, alpha, alpha) if p in index}
    assert got == expected


def test_pattern_outside_span_is_not_paired():
    patterns = PatternSet.from_tuples([(1, 2)], [2])
    pairs = pair_patterns([[1, 9, 9, 2], [1, 9, 2]], [10, 11], patterns, alpha=3)
    assert pairs.user.tolist() == [11]
    assert pairs.users_without_pairs.tolist() == [10]


def test_cap_and_determinism():
    seqs, users = random_corpus(3, n=200, vocab=6, max_len=20)
    patterns = mine(seqs, 5, 2)
    a = pair_patterns(seqs, users, patterns, 5, max_pairs=4, seed=11)
    b = pair_patterns(seqs, users, patterns, 5, max_pairs=4, seed=11)
    c = pair_patterns(seqs, users, patterns, 5, max_pairs=4, seed=12)
    assert np.array_equal(a.user, b.user) and np.array_equal(a.pattern_id, b.pattern_id)
    assert not np.array_equal(a.pattern_id, c.pattern_id)
    _, per_user = np.unique(a.user, return_counts=True)
    assert per_user.max() == 4
    assert a.contained > len(a)
    full = pair_patterns(seqs, users, patterns, 5, max_pairs=10_000)
    assert len(full) == a.contained  # no cap: every containment is kept


def test_draw_depends_only_on_seed_and_user():
    seqs, users = random_corpus(4, n=120, vocab=6, max_len=20)
    patterns = mine(seqs, 4, 2)
    whole = pair_patterns(seqs, users, patterns, 4, max_pairs=3, seed=5)
    part = pair_patterns(seqs[40:90], users[40:90], patterns, 4, max_pairs=3, seed=5)
    sel = np.isin(whole.user, users[40:90])
    assert np.array_equal(whole.user[sel], part.user)
    assert np.array_equal(whole.pattern_id[sel], part.pattern_id)


def test_pairs_follow_input_order_and_report_users_without_pairs():
    seqs, users = random_corpus(5, n=80)
    patterns = mine(seqs, 3, 4)
    pairs = pair_patterns(seqs, users, patterns, 3)
    pos = {u: i for i, u in enumerate(users.tolist())}
    order = [pos[u] for u in pairs.user.tolist()]
    assert order == sorted(order)
    assert set(pairs.users_without_pairs.tolist()) == set(users.tolist()) - set(pairs.user.tolist())


def test_bad_pairing_input():
    patterns = PatternSet.from_tuples([(1, 2)], [2])
    with pytest.raises(DR4SRError, match="max_pairs"):
        pair_patterns([[1, 2]], [1], patterns, 3, max_pairs=0)
    with pytest.raises(DR4SRError, match="user ids"):
        pair_patterns([[1, 2]], [1, 2], patterns, 3)
