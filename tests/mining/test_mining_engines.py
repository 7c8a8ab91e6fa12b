"""Native vs seq2pat vs a brute-force oracle: identical patterns and supports."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mining_oracle import brute_mine

from dr4sr.errors import DR4SRError
from dr4sr.mining.engines import mine, mine_patterns
from dr4sr.mining.patterns import PatternSet

TOY = [np.array([1, 2, 3, 4, 5]), np.array([1, 2, 3])]


def as_dict(patterns, supports):
    return dict(zip(patterns, supports.tolist()))


@pytest.mark.parametrize("engine", ["native", "seq2pat"])
def test_toy_case(engine):
    patterns, supports = mine_patterns(TOY, alpha=3, beta=2, engine=engine)
    assert patterns == [(1, 2), (1, 3), (2, 3), (1, 2, 3)]
    assert supports.tolist() == [2, 2, 2, 2]


def test_span_rule_is_last_minus_first_at_most_alpha_minus_one():
    seqs = [[1, 7, 8, 2], [1, 9, 6, 2]]  # 1 .. 2 spans indices 0..3
    for engine in ("native", "seq2pat"):
        assert (1, 2) not in mine_patterns(seqs, alpha=3, beta=2, engine=engine)[0]
        assert mine_patterns(seqs, alpha=4, beta=2, engine=engine)[0] == [(1, 2)]


def test_repeats_count_once_per_sequence():
    seqs = [[1, 2, 1, 2], [5, 6]]
    for engine in ("native", "seq2pat"):
        patterns, supports = mine_patterns(seqs, alpha=2, beta=1, engine=engine)
        assert as_dict(patterns, supports) == {(1, 2): 1, (2, 1): 1, (5, 6): 1}


def check_same(seqs, alpha, beta, max_len=None):
    native = mine(seqs, alpha, beta, engine="native", max_pattern_len=max_len)
    ref = mine(seqs, alpha, beta, engine="seq2pat", max_pattern_len=max_len)
    assert native.equals(ref), (seqs, alpha, beta)
    assert as_dict(native.tuples(), native.supports) == brute_mine(seqs, alpha, beta, max_len)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seqs=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=12), min_size=1, max_size=10),
       alpha=st.integers(2, 6), beta=st.integers(1, 3))
def test_native_equals_seq2pat_property(seqs, alpha, beta):
    check_same(seqs, alpha, beta)


@pytest.mark.parametrize("trial", range(6))
def test_native_equals_seq2pat_random_larger(trial):
    rng = random.Random(trial)
    vocab = rng.choice([5, 20, 80])
    seqs = [[rng.randint(1, vocab) for _ in range(rng.randint(1, 25))] for _ in range(rng.randint(20, 120))]
    check_same(seqs, rng.randint(2, 7), rng.randint(1, 4))


def test_max_pattern_len_caps_lengths():
    rng = random.Random(7)
    seqs = [[rng.randint(1, 4) for _ in range(10)] for _ in range(30)]
    check_same(seqs, alpha=6, beta=2, max_len=3)
    assert mine(seqs, 6, 2, max_pattern_len=3).lengths.max() == 3


def test_canonical_order_and_empty_sequences():
    seqs = [[3, 1, 2], [], [3, 1, 2], [4]]
    patterns, supports = mine_patterns(seqs, alpha=3, beta=2)
    assert patterns == sorted(patterns, key=lambda p: (len(p), p))
    assert patterns == [(1, 2), (3, 1), (3, 2), (3, 1, 2)]
    assert mine(seqs, 3, 2, engine="seq2pat").equals(mine(seqs, 3, 2))


def test_beta_above_row_count_is_empty():
    assert len(mine([[1, 2]], 2, 5)) == 0
    assert len(mine([[1, 2]], 2, 5, engine="seq2pat")) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1, "beta": 2}, "alpha"),
    ({"alpha": 5, "beta": 0}, "beta"),
    ({"alpha": 5, "beta": 2, "max_pattern_len": 1}, "max_pattern_len"),
    ({"alpha": 5, "beta": 2, "engine": "spade"}, "engine"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(DR4SRError, match=message):
        mine(TOY, **kwargs)


@pytest.mark.parametrize("seqs", [[], None])
def test_empty_input(seqs):
    with pytest.raises(DR4SRError, match="empty"):
        mine(seqs, 5, 2)


def test_negative_items_rejected():
    with pytest.raises(DR4SRError, match="negative"):
        mine([[1, -2, 3]], 3, 1)


def test_pattern_set_roundtrip():
    ps = PatternSet.from_tuples([(2, 1), (1, 2, 3)], [4, 5])
    assert ps.tuples() == [(2, 1), (1, 2, 3)]
    assert ps.padded().tolist() == [[2, 1, -1], [1, 2, 3]]


@pytest.mark.slow
def test_beauty_alpha5_native_equals_seq2pat(tmp_path):
    import os
    from pathlib import Path

    from dr4sr.data.datasets import load_dataset
    from dr4sr.data.splits import leave_one_out

    data_dir = Path(os.environ["DR4SR_DATA_DIR"])  # tests/conftest.py defaults it to ../shared/datasets
    if not (data_dir / "beauty.txt").exists():
        pytest.skip(f"beauty.txt not in $DR4SR_DATA_DIR ({data_dir})")
    seqs = leave_one_out(load_dataset("beauty", str(data_dir))).train_full
    assert mine(seqs, 5, 2).equals(mine(seqs, 5, 2, engine="seq2pat"))
