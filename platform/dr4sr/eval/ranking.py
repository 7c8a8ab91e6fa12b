"""Full-ranking evaluation: every item is a candidate; padding and the user's history are masked.

Rank of a target = 1 + number of unmasked items with a strictly higher score (ties favour the target).
Users are sorted by history length and chunked so each chunk pads only to its own longest row.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dr4sr.data.batching import pad_sequences
from dr4sr.models.base import Backbone

KS = (10, 20)


@torch.no_grad()
def rank_targets(model: Backbone, histories: Sequence[np.ndarray], targets: np.ndarray, max_len: int = 50,
                 batch_size: int = 2048, device: str | torch.device = "cpu",
                 mask_history: bool = True) -> np.ndarray:
    """1-based rank of each user's target among all items; returns int64 array aligned with `targets`."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    lengths = np.fromiter((min(len(h), max_len) for h in histories), dtype=np.int64, count=len(histories))
    order = np.argsort(lengths, kind="stable")
    ranks = np.empty(len(histories), dtype=np.int64)
    item_w = model.item_weights()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        seqs, lens = pad_sequences([histories[i] for i in idx], model.padding, None)
        seqs = seqs[:, -max_len:] if model.padding == "left" else seqs[:, :max_len]
        seqs_t = torch.from_numpy(seqs).to(device)
        lens_t = torch.from_numpy(np.minimum(lens, max_len)).to(device)
        scores = model.last_hidden(seqs_t, lens_t) @ item_w.t()
        scores[:, 0] = float("-inf")
        if mask_history:
            scores.scatter_(1, seqs_t, float("-inf"))  # padding id 0 is already masked
        tgt = torch.from_numpy(np.asarray(targets)[idx]).to(device)
        tgt_score = scores.gather(1, tgt[:, None])
        ranks[idx] = ((scores > tgt_score).sum(1) + 1).cpu().numpy()
    model.train(was_training)
    return ranks


def metric_sums(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Sums (not means) of Recall@k and NDCG@k, so shards can be added before dividing."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = float(hit.sum())
        out[f"ndcg@{k}"] = float((hit / np.log2(ranks + 1.0)).sum())
    return out


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {k: v / n for k, v in metric_sums(ranks, ks).items()}
