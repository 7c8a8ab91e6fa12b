import dataclasses

import numpy as np
import pytest
import torch

from dr4sr.regen.config import RegenerateConfig, RegeneratorConfig
from dr4sr.regen.decode import coin_flips, decode_batch, decode_reference
from dr4sr.regen.model import Regenerator
from dr4sr.regen.regenerate import regenerate_local

N = 100
OUTSIDE = 50  # sources use items 1..50; the rigged model prefers items > 50


def _random_model(k=3) -> Regenerator:
    torch.manual_seed(1)
    return Regenerator(RegeneratorConfig(hidden_size=16, inner_size=32, k=k, dropout=0.0, max_positions=20), N).eval()


def _rigged_model() -> Regenerator:
    """Scores fixed per item: any item > 50 beats every source item, lower ids first, EOS last.

    So each emitted item tells which mode its step was in: > 50 <=> generative.
    """
    m = _random_model()
    prefs = torch.arange(m.vocab, dtype=torch.float32).neg()
    prefs[OUTSIDE + 1:N + 1] += 1000.0
    prefs[m.eos] = -1e4
    m.logits = lambda hidden: prefs.expand(hidden.size(0), -1).clone()
    m.score_items = lambda hidden, items: prefs[items]
    return m


def _sources(n, length=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, OUTSIDE + 1), size=length, replace=False) for _ in range(n)]


def test_coin_flips_are_counter_based_and_uniform():
    users, ks = np.arange(5000), np.arange(5000) % 5
    a = coin_flips(7, users, ks, 3)
    assert np.array_equal(a[10:20], coin_flips(7, users[10:20], ks[10:20], 3))  # independent of batching
    assert not np.array_equal(a, coin_flips(8, users, ks, 3))
    assert not np.array_equal(a, coin_flips(7, users, ks, 4))
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.02
    assert abs(np.mean(a < 0.1) - 0.1) < 4 * np.sqrt(0.09 / 5000)


def test_restrictive_decoding_emits_only_unused_source_items():
    m = _random_model()
    srcs = _sources(40, length=6)
    out = decode_batch(m, srcs, np.arange(40), RegenerateConfig(gamma=0.0, max_length=10))
    for s, row in zip(srcs, out):
        assert len(row) == 3
        for p in row:
            assert set(p.tolist()) <= set(s.tolist()) and len(set(p.tolist())) == len(p)
            assert 2 <= len(p) <= 6  # min_length 2; at most every source item once, then EOS


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_hybrid_steps_follow_the_coins(gamma):
    m = _rigged_model()
    users = np.arange(300) + 1000
    cfg = RegenerateConfig(gamma=gamma, seed=3, max_length=6)
    out = decode_batch(m, _sources(300), users, cfg)
    generative = []
    for u, row in zip(users, out):
        for k, p in enumerate(row):
            assert len(p) == 6  # EOS scored last: every pattern hits the cap
            is_gen = p > OUTSIDE
            coins = np.array([coin_flips(3, np.array([u]), np.array([k]), s)[0] for s in range(6)])
            assert np.array_equal(is_gen, coins < gamma)
            assert len(set(p.tolist())) == 6 and not np.isin(p, [0, m.bos, m.eos]).any()
            generative.extend(is_gen)
    rate, n = np.mean(generative), len(generative)
    if gamma in (0.0, 1.0):
        assert rate == gamma
    else:
        assert abs(rate - gamma) < 4 * np.sqrt(gamma * (1 - gamma) / n)  # 5,400 steps: |rate-.5| < .027


def test_exhausted_source_forces_eos():
    m = _rigged_model()
    out = decode_batch(m, [np.array([3, 9])], np.array([0]), RegenerateConfig(gamma=0.0, max_length=10))
    assert [p.tolist() for p in out[0]] == [[3, 9]] * 3  # both items (lowest id first), then EOS


def _positions(p, s):
    where = {int(x): i for i, x in enumerate(s)}
    return [where[int(x)] for x in p]


@pytest.mark.parametrize("span", [0, 3])
def test_ordered_restriction_keeps_source_order_and_span(span):
    m = _random_model()
    srcs = _sources(60, length=9)
    cfg = RegenerateConfig(gamma=0.0, max_length=10, restrict="ordered", span=span)
    out = decode_batch(m, srcs, np.arange(60), cfg)
    free = decode_batch(m, srcs, np.arange(60), RegenerateConfig(gamma=0.0, max_length=10))
    reversed_free = 0
    for s, row, free_row in zip(srcs, out, free):
        for p, q in zip(row, free_row):
            pos = _positions(p, s)
            assert len(p) >= 2 and pos == sorted(pos) and len(set(pos)) == len(pos)  # min_length kept
            if span:
                assert pos[-1] - pos[0] <= span - 1
            reversed_free += _positions(q, s) != sorted(_positions(q, s))
    assert reversed_free > 0  # the paper's restriction does emit out-of-order patterns on this model


def test_ordered_restriction_ends_at_the_last_source_item():
    m = _rigged_model()  # prefers the lowest item id: from [9, 3, 7] it takes 3, then only 7 is later
    cfg = RegenerateConfig(gamma=0.0, max_length=10, restrict="ordered")
    out = decode_batch(m, [np.array([9, 3, 7])], np.array([0]), cfg)
    assert [p.tolist() for p in out[0]] == [[3, 7]] * 3


@pytest.mark.parametrize("gamma,restrict", [(0.0, "source"), (0.3, "source"), (1.0, "source"), (0.3, "ordered")])
def test_batched_cached_decoder_equals_reference(gamma, restrict):
    m = _random_model()
    rng = np.random.default_rng(5)
    srcs = [rng.choice(np.arange(1, N + 1), size=int(rng.integers(1, 15)), replace=False) for _ in range(25)]
    span = 5 if restrict == "ordered" else 0
    cfg = RegenerateConfig(gamma=gamma, max_length=8, seed=11, restrict=restrict, span=span)
    a = decode_batch(m, srcs, np.arange(25), cfg)
    b = decode_reference(m, srcs, np.arange(25), cfg)
    assert [[p.tolist() for p in r] for r in a] == [[p.tolist() for p in r] for r in b]


def test_trained_model_batched_equals_reference(trained, planted):
    model, _ = trained
    seqs, users, _ = planted
    cfg = RegenerateConfig(gamma=0.2, max_length=6)
    a = decode_batch(model, seqs[:40], users[:40], cfg)
    b = decode_reference(model, seqs[:40], users[:40], cfg)
    assert [[p.tolist() for p in r] for r in a] == [[p.tolist() for p in r] for r in b]


def test_same_rows_for_any_batch_size():
    m = _random_model()
    srcs = _sources(50, length=10)
    users = np.arange(50) * 7
    cfg = RegenerateConfig(gamma=0.3)
    tables = [regenerate_local(m, srcs, users, dataclasses.replace(cfg, batch_size=b)) for b in (1, 7, 64)]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert tables[0].num_rows == 150


def test_batch_threads_give_the_same_rows_and_restore_torch_threads():
    m = _random_model()
    srcs = [np.asarray(s) for s in _sources(60, length=9, seed=3)]
    srcs[5] = srcs[5][:3]  # mixed lengths: batches finish out of order
    users = np.arange(60) + 11
    cfg = RegenerateConfig(gamma=0.3, batch_size=4)
    before = torch.get_num_threads()
    serial = regenerate_local(m, srcs, users, cfg, threads=1)
    threaded = regenerate_local(m, srcs, users, cfg, threads=3)
    assert threaded.equals(serial) and threaded.num_rows == 180
    assert threaded.column("user").to_pylist()[:3] == [11, 11, 11]
    assert torch.get_num_threads() == before
