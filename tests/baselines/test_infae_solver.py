"""∞-AE's solve, scoring, ranking and lambda choice against small dense references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dr4sr.baselines import run as run_mod
from dr4sr.baselines.infae import (
    KernelRidge,
    NotPositiveDefinite,
    interaction_matrix,
    inverse_spd_,
    query_ranks,
    rank_dense,
    train_row_ranks,
)
from dr4sr.baselines.ntk import relu_ntk
from dr4sr.baselines.run import InfAEConfig, build_infae_config, fit_and_rank
from dr4sr.data.sequences import make_sequence_data
from dr4sr.data.splits import leave_one_out
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.eval.ranking import count_higher, metrics_from_ranks


def tiny_splits(num_users=40, num_items=25, seed=0):
    """Users walking item chains i -> i+1 -> ... (like conftest's tiny_dataset): neighbours share items."""
    rng = np.random.default_rng(seed)
    seqs = [[(s + j) % num_items + 1 for j in range(n)]
            for s, n in zip(rng.integers(0, num_items, num_users), rng.integers(4, 10, num_users))]
    return leave_one_out(make_sequence_data(np.arange(1, num_users + 1), seqs, "tiny"), 50)


def random_splits(num_users=40, num_items=25, seed=0):
    """Items drawn with skewed popularity: no symmetry, so exact score ties with the target are rare."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_items + 1)
    seqs = [rng.choice(np.arange(1, num_items + 1), n, p=p / p.sum()) for n in rng.integers(4, 10, num_users)]
    return leave_one_out(make_sequence_data(np.arange(1, num_users + 1), seqs, "random"), 50)


def dense_reference(x: np.ndarray, xq: np.ndarray, dim: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """The textbook form: alpha = solve(K + lambda tr(K)/U I, X); scores = K(q, X) alpha (train rows, queries)."""
    sq, sqq = (x * x).sum(1), (xq * xq).sum(1)
    k = relu_ntk(x @ x.T, sq, sq, dim, 1, math.sqrt(2), 0.1)
    kq = relu_ntk(xq @ x.T, sqq, sq, dim, 1, math.sqrt(2), 0.1)
    alpha = np.linalg.solve(k + lam * np.trace(k) / len(x) * np.eye(len(x)), x)
    return k @ alpha, kq @ alpha


def naive_ranks(scores: np.ndarray, targets: np.ndarray, histories, eps: float = 0.0) -> np.ndarray:
    """1 + #unmasked items scoring above the target's score + eps (a masked target ranks last)."""
    out = []
    for s, t, h in zip(scores, targets, histories):
        masked = {0, *map(int, h)}
        ts = -np.inf if t in masked else s[t]
        out.append(1 + sum(1 for i in range(len(s)) if i not in masked and i != t and s[i] > ts + eps))
    return np.asarray(out)


def assert_ranks_match(ranks, scores, targets, histories):
    """Equal up to items whose score ties the target's within rounding (the chain data has exact ties)."""
    lo, hi = naive_ranks(scores, targets, histories, 1e-9), naive_ranks(scores, targets, histories, -1e-9)
    assert ((lo <= ranks) & (ranks <= hi)).all(), (ranks, lo, hi)
    assert (lo == hi).mean() > 0.5  # most users have no such tie: the check has teeth


def test_inverse_in_place_matches_numpy_and_rejects_indefinite():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 300))
    a = a @ a.T / 300 + 0.1 * np.eye(300)
    m = a.copy()
    inverse_spd_(m, block=64)  # blocks that do not divide 300: the mirror's edge case
    np.testing.assert_allclose(m, np.linalg.inv(a), rtol=1e-8, atol=1e-10)
    m32 = a.astype(np.float32)
    inverse_spd_(m32)
    np.testing.assert_allclose(m32, np.linalg.inv(a), rtol=1e-3, atol=1e-3)
    with pytest.raises(NotPositiveDefinite):
        inverse_spd_(np.diag([1.0, -1.0, 2.0]))


@pytest.mark.parametrize("lam", [0.5, 5.0])
def test_scores_match_a_dense_solve(lam):
    splits = random_splits()
    dim = splits.num_items
    x = interaction_matrix(splits.train, dim, np.float64)
    hist = splits.history("test")
    xq = interaction_matrix(hist, dim, np.float64)
    ref_train, ref_query = dense_reference(x.toarray(), xq.toarray(), dim, lam)
    model = KernelRidge(x, dim, np.float64, block=7)
    at = model.dual(lam)
    np.testing.assert_allclose(x.toarray() - model.reg(lam) * at.T, ref_train, atol=1e-10)  # K A = X - cA
    np.testing.assert_allclose(model.query_kernel(xq) @ at.T, ref_query, atol=1e-10)
    np.testing.assert_allclose(model.k.trace() / len(x.toarray()) * lam, model.reg(lam))
    # ranks from the blockwise paths equal ranks counted naively from the dense scores
    v_t, v_h = splits.target("valid"), splits.history("valid")
    assert_ranks_match(train_row_ranks(model, at, lam, v_t, v_h), ref_train, v_t, v_h)
    t_t = splits.target("test")
    assert_ranks_match(query_ranks(model, at, hist, t_t, hist), ref_query, t_t, hist)


def test_rank_dense_follows_count_higher():
    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(64, 8, generator=g), torch.randn(30, 8, generator=g)
    target = torch.randint(1, 30, (64,), generator=g)
    hist = torch.randint(0, 30, (64, 5), generator=g)
    hist[:8, 0] = target[:8]  # targets inside the history rank last
    hist[8:16] = torch.round(users[8:16, :5].abs()).long()  # repeats and padding zeros
    expected = count_higher(users, items, target, hist)
    scores = users @ items.T
    np.testing.assert_array_equal(rank_dense(scores.clone(), target, hist).numpy(), expected.numpy())
    assert (expected[:8] == 1 + 29 - torch.tensor([len(set(h.tolist()) - {0}) for h in hist[:8]])).all()


def test_float32_agrees_with_float64():
    splits = tiny_splits(60, 30, seed=2)
    got = {}
    for dtype in ("float32", "float64"):
        metrics, ranks = fit_and_rank(InfAEConfig(dtype=dtype, lambdas=[1.0, 5.0]), splits, log=lambda m: None)
        got[dtype] = metrics, ranks
    (m32, r32), (m64, r64) = got["float32"], got["float64"]
    assert m32["best_lambda"] == m64["best_lambda"]
    assert (r32 == r64).mean() > 0.95  # near-ties may swap in float32
    for key in ("ndcg@20", "recall@20"):
        assert m32["test"][key] == pytest.approx(m64["test"][key], abs=0.02)


def test_lambda_with_the_best_validation_metric_is_chosen_and_tested(monkeypatch):
    """Validation quality per lambda is faked: the choice, the skip of a failed lambda and the use of the
    chosen lambda's solution for the test are what is checked."""
    splits = tiny_splits()
    quality = {1.0: 9, 5.0: 2, 20.0: 4, 50.0: 2}  # rank of every user per lambda: 5 and 50 tie for best

    def fake_dual(self, lam):
        if lam == 100.0:
            raise NotPositiveDefinite("not positive definite (test)")
        return np.full((1, 1), lam)

    monkeypatch.setattr(KernelRidge, "dual", fake_dual)
    monkeypatch.setattr(run_mod, "train_row_ranks",
                        lambda model, at, lam, t, h: np.full(len(t), quality[float(at[0, 0])]))
    tested = []
    monkeypatch.setattr(run_mod, "query_ranks",
                        lambda model, at, q, t, h: tested.append(at[0, 0]) or np.ones(len(t), int))
    cfg = InfAEConfig(lambdas=[1.0, 5.0, 20.0, 50.0, 100.0])
    metrics, _ = fit_and_rank(cfg, splits, log=lambda m: None)
    assert metrics["best_lambda"] == 5.0 and tested == [5.0]  # ties: the first in grid order
    assert metrics["valid"] == metrics_from_ranks(np.full(splits.num_users, 2))
    assert [e["lambda"] for e in metrics["lambda_search"]] == cfg.lambdas
    assert "error" in metrics["lambda_search"][-1]
    best = max(e["valid"]["ndcg@20"] for e in metrics["lambda_search"] if "valid" in e)
    assert metrics["valid"]["ndcg@20"] == best

    monkeypatch.setattr(KernelRidge, "dual", lambda self, lam: (_ for _ in ()).throw(NotPositiveDefinite("x")))
    with pytest.raises(DR4SRError, match="no lambda in"):
        fit_and_rank(cfg, splits, log=lambda m: None)


def test_real_lambda_search_picks_the_argmax():
    metrics, _ = fit_and_rank(InfAEConfig(lambdas=[0.1, 1.0, 10.0]), tiny_splits(), log=lambda m: None)
    vals = {e["lambda"]: e["valid"]["ndcg@20"] for e in metrics["lambda_search"]}
    assert metrics["best_lambda"] == max(vals, key=vals.get)


@pytest.mark.parametrize("override,match", [
    ({"infae": {"lambdas": [0, 1]}}, "must all be > 0"),
    ({"infae": {"lambdas": []}}, "at least one"),
    ({"infae": {"dtype": "float16"}}, "infae.dtype"),
    ({"infae": {"test_query": "valid"}}, "infae.test_query"),
    ({"infae": {"lamdas": [1]}}, "unknown config key 'infae.lamdas'"),
    ({"infae": {"lambdas": "five"}}, "infae.lambdas"),
])
def test_bad_config_is_one_clear_error(override, match):
    with pytest.raises(ConfigError, match=match):
        build_infae_config("beauty", override)


def test_config_defaults_and_smoke():
    cfg = build_infae_config("beauty", {"infae": {"lambdas": [2, 3]}}, smoke_test=True, seed=7)
    assert cfg.infae.lambdas == [2.0, 3.0] and cfg.infae.max_users == 1000 and cfg.infae.seed == 7
    assert cfg.data.dataset == "beauty" and cfg.data.max_len == 50
    assert build_infae_config().infae == InfAEConfig()  # the YAML and the dataclass defaults agree
