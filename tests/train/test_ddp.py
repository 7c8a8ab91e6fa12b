"""DDP correctness: 2 Ray Train workers (gloo) follow the single-process loss curve for the same global batch,
and each run's saved per-user test ranks are the ranks its own saved model gives (brute force, here)."""
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dr4sr.config import from_dict, parse_overrides
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import get_backbone
from dr4sr.train.runner import build_run_config, train_stage

# CE (no sampled negatives) and no dropout: the only differences left are how the global batch is
# split (each rank averages its own positions) and float reduction order.
SETTINGS = ["model.dropout=0.0", "train.loss=ce", "train.batch_size=32", "train.max_epochs=5",
            "train.patience=10", "train.lr=0.003"]
TOLERANCE = 0.03  # relative, per epoch


def read_users(path):
    """{user: items} straight from the text file (`user item item ...`), no dr4sr parsing."""
    return {int(f[0]): [int(x) for x in f[1:]] for f in (ln.split() for ln in path.read_text().splitlines()) if f}


@torch.no_grad()
def brute_force_ranks(model, histories, targets, num_items, eps=1e-4):
    """(lowest, highest) possible 1-based rank of each target among items 1..num_items with the history
    and the target itself excluded from the competitors, scored one user at a time without padding; a
    target inside its own history ranks last. The pair brackets near-ties (|score difference| <= eps),
    whose order float rounding of a batched forward pass may flip."""
    w = model.item_weights()
    lo, hi = [], []
    for hist, target in zip(histories, targets):
        h = model.last_hidden(torch.tensor([hist]), torch.tensor([len(hist)]))[0]
        scores = (w @ h).double()
        rivals = [i for i in range(1, num_items + 1) if i not in hist and i != target]
        if target in hist:
            lo.append(len(rivals) + 1)
            hi.append(len(rivals) + 1)
            continue
        diff = scores[rivals] - scores[target]
        lo.append(1 + int((diff > eps).sum()))
        hi.append(1 + int((diff > -eps).sum()))
    return np.array(lo), np.array(hi)


def closed_form(ranks, ks=(10, 20)):
    """Recall@k = share of ranks <= k; NDCG@k with one relevant item = mean of 1/log2(rank + 1) if rank <= k."""
    out = {}
    for k in ks:
        out[f"recall@{k}"] = sum(r <= k for r in ranks) / len(ranks)
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 1) for r in ranks if r <= k) / len(ranks)
    return out


def check_run(run_dir, cfg, data):
    """The run's user_metrics.parquet against its own model.pt, and metrics.json against those ranks."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table = pq.read_table(run_dir / "user_metrics.parquet").to_pydict()
    assert table["user"] == list(data), "one row per user, in file order"
    spec = get_backbone(cfg.backbone)
    model = spec.model_cls(from_dict(spec.config_cls, cfg.model, "model."), BuildContext(num_items=40, max_len=50))
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    model.eval()
    seqs = list(data.values())
    # test: history = all but the last item, target = the last (leave-one-out; sequences are <= 12 < max_len)
    lo, hi = brute_force_ranks(model, [s[:-1] for s in seqs], [s[-1] for s in seqs], 40)
    ranks = np.array(table["rank"])
    bad = np.flatnonzero((ranks < lo) | (ranks > hi))
    assert bad.size == 0, [(table["user"][i], ranks[i], lo[i], hi[i]) for i in bad]
    assert np.sum(lo != hi) <= 2  # the bracket is a point for (nearly) every user: the check has teeth
    assert metrics["test"] == pytest.approx(closed_form(ranks.tolist()), rel=1e-9, abs=1e-12)
    # validation at the best epoch (model.pt holds the best epoch's weights): target = second to last item
    vlo, vhi = brute_force_ranks(model, [s[:-2] for s in seqs], [s[-2] for s in seqs], 40)
    low, high = closed_form(vhi.tolist()), closed_form(vlo.tolist())  # worse ranks give lower metrics
    for k, v in metrics["valid"].items():
        assert low[k] - 1e-9 <= v <= high[k] + 1e-9, (k, v, low[k], high[k])
    return metrics, ranks


def with_random_test_targets(path, out, seed=0):
    """The chain dataset with each user's last item (the test target) replaced by a random item outside
    the sequence: training rows and validation targets are unchanged, but test ranks now spread over
    1..40 (a model that learned the chains ranks every chain target 1, and a mix-up of users' ranks
    could not show)."""
    rng = np.random.default_rng(seed)
    data = read_users(path)
    for items in data.values():
        items[-1] = int(rng.choice([i for i in range(1, 41) if i not in items]))
    out.write_text("".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in data.items()))
    return out, data


def test_two_workers_follow_single_process_curve(tiny_dataset, tmp_path, ray_session, capsys):
    dataset, data = with_random_test_targets(tiny_dataset, tmp_path / "tiny.txt")
    cfg = build_run_config("sasrec", str(dataset), parse_overrides(SETTINGS))
    single = train_stage(cfg, tmp_path / "one", log=lambda *_: None)
    capsys.readouterr()
    ddp = train_stage(cfg, tmp_path / "two", workers=2, log=lambda *_: None)
    # each epoch's line once (rank 0 only), on the driver's stderr, without Ray's "(RayTrainWorker ...)" prefix
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "| loss " in ln]
    assert [ln.split("|")[0].split() for ln in lines] == [["epoch", str(e)] for e in range(5)], lines
    a = np.array([h["loss"] for h in single["history"]])
    b = np.array([h["loss"] for h in ddp["history"]])
    assert ddp["world_size"] == 2 and len(a) == len(b) == 5
    assert np.all(np.abs(a - b) / a < TOLERANCE), (a, b)
    assert a[-1] < a[0] and b[-1] < b[0]
    # The two runs' weights differ (per-rank averaging, reduction order), so their ranks may too. What
    # must hold for each: evaluation is sharded over the 2 ranks and gathered back, so every user's saved
    # rank is the rank the saved model gives that user, and metrics.json is the closed form of those ranks.
    m1, _ = check_run(tmp_path / "one", cfg, data)
    m2, r2 = check_run(tmp_path / "two", cfg, data)
    assert m1["world_size"] == 1 and m2["world_size"] == 2
    assert len(set(r2.tolist())) >= 10  # ranks spread out: a permutation of users would not go unseen
    # the DDP model is not a copy of the single-process one (else this test could not tell them apart)
    w1 = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    w2 = torch.load(tmp_path / "two" / "model.pt", weights_only=True)
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
