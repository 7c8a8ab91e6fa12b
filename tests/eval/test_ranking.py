import math

import numpy as np
import pytest
import torch

from dr4sr.eval.ranking import count_higher, metrics_from_ranks, rank_targets
from dr4sr.models.base import Backbone


class FixedScores(Backbone):
    """User vector = one-hot of the last item: score(item j) = W[j, last]."""

    def __init__(self, table: torch.Tensor):
        super().__init__(table.size(0) - 1, table.size(1))
        self.item_embedding.weight.data = table.clone()

    def forward(self, seqs, lengths):
        return torch.nn.functional.one_hot(seqs, self.hidden_size).float()


def test_metrics_hand_computed():
    ranks = np.array([1, 3, 10, 11, 20, 21])
    m = metrics_from_ranks(ranks)
    assert m["recall@10"] == pytest.approx(3 / 6)
    assert m["recall@20"] == pytest.approx(5 / 6)
    ndcg10 = (1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(11)) / 6
    assert m["ndcg@10"] == pytest.approx(ndcg10)
    assert m["ndcg@20"] == pytest.approx(ndcg10 + (1 / math.log2(12) + 1 / math.log2(21)) / 6)


def test_rank_masks_padding_and_history_and_counts_strictly_higher():
    # 6 items; hidden size 6: the user vector selects column `last item` of the table
    scores_for_last_item_3 = torch.tensor([9.0, 5.0, 8.0, 7.0, 6.0, 5.0, 1.0])  # item 0 = padding
    table = torch.zeros(7, 7)
    table[:, 3] = scores_for_last_item_3
    model = FixedScores(table)
    # history [2, 3]: items 2 (8.0) and 3 (7.0) are masked; padding (9.0) is masked
    # target 4 (6.0): strictly higher unmasked -> none; item 1 and 5 tie at 5.0 below -> rank 1
    ranks = rank_targets(model, [np.array([2, 3])], np.array([4]), max_len=50)
    assert ranks.tolist() == [1]
    # target 5 (5.0): item 4 (6.0) is higher, item 1 ties (5.0) and does not count -> rank 2
    assert rank_targets(model, [np.array([2, 3])], np.array([5]))[0] == 2
    # without masking: padding? never. items 2, 3, 4 are higher than 5.0 -> rank 4
    assert rank_targets(model, [np.array([2, 3])], np.array([5]), mask_history=False)[0] == 4


def test_target_in_history_is_masked_and_ranks_after_all_unmasked():
    table = torch.zeros(7, 7)
    table[:, 3] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    model = FixedScores(table)
    # history [2, 3] contains the target 2: 6 items - 2 masked = 4 unmasked items above it -> rank 5
    assert rank_targets(model, [np.array([2, 3])], np.array([2]))[0] == 5


def test_count_higher_matches_dense_reference_with_repeats_and_blocks(monkeypatch):
    import dr4sr.eval.ranking as ranking

    monkeypatch.setattr(ranking, "ITEM_BLOCK", 7)  # many blocks, excluded columns on block edges
    g = torch.Generator().manual_seed(0)
    n_items, d, B = 50, 8, 40
    W = torch.randn(n_items + 1, d, generator=g)
    x = torch.randn(B, d, generator=g)
    hist = torch.randint(0, n_items + 1, (B, 12), generator=g)  # includes padding 0 and repeats
    tgt = torch.randint(1, n_items + 1, (B,), generator=g)
    got = count_higher(x, W, tgt, hist)
    dense = x @ W.t()
    dense[:, 0] = float("-inf")
    tscore = dense.gather(1, tgt[:, None]).clone()
    dense.scatter_(1, hist, float("-inf"))
    in_hist = (hist == tgt[:, None]).any(1, keepdim=True)
    tscore[in_hist] = float("-inf")
    expected = (dense > tscore).sum(1) + 1
    assert got.tolist() == expected.tolist()
