"""CL4SRec: the model and its auxiliary loss (dr4sr.train.augment; kept here, next to the backbone)."""
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dr4sr.config import from_dict
from dr4sr.data.batching import Batch
from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.cl4srec import CL4SRec, CL4SRecConfig
from dr4sr.train.augment import CL4SRecLoss, cl4srec_auxiliary, crop, info_nce, mask, mean_pool, random_augment, reorder


def batch_of(rows):
    n = max(len(r) for r in rows)
    seqs = torch.tensor([list(r) + [0] * (n - len(r)) for r in rows])
    return seqs, torch.tensor([len(r) for r in rows])


ROWS = [list(range(1, 11)), [11, 12, 13, 14, 15], [16], [17, 18, 19, 20, 21, 22, 23]]


def test_crop_keeps_a_contiguous_window_of_floor_eta_n():
    seqs, lengths = batch_of(ROWS)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        out, keep = crop(seqs, lengths, 0.2, gen)
        assert keep.tolist() == [2, 1, 1, 1]  # max(1, floor(0.2 n))
        for row, o, k in zip(ROWS, out.tolist(), keep.tolist()):
            window = o[:k]
            assert any(row[s:s + k] == window for s in range(len(row) - k + 1))
            assert all(v == 0 for v in o[k:])


def test_mask_hits_exactly_floor_gamma_n_real_positions():
    seqs, lengths = batch_of(ROWS)
    gen = torch.Generator().manual_seed(1)
    seen_positions = set()
    for _ in range(30):
        out, same = mask(seqs, lengths, 0.7, mask_token=99, gen=gen)
        assert torch.equal(same, lengths)
        hits = out == 99
        assert hits.sum(1).tolist() == [7, 3, 0, 4]  # floor(0.7 * [10, 5, 1, 7]) = 7, 3, 0, 4 (0.7*7 = 4.9)
        assert torch.equal(out[~hits], seqs[~hits])  # everything else untouched, padding included
        seen_positions |= set(hits[0].nonzero().flatten().tolist())
    assert seen_positions == set(range(10))  # uniform over the real positions


def test_reorder_permutes_one_window_only():
    seqs, lengths = batch_of(ROWS)
    gen = torch.Generator().manual_seed(2)
    changed = 0
    for _ in range(30):
        out, _ = reorder(seqs, lengths, 0.2, gen)
        for row, o in zip(ROWS, out.tolist()):
            real = o[:len(row)]
            assert sorted(real) == sorted(row) and all(v == 0 for v in o[len(row):])
            diff = [i for i, (a, b) in enumerate(zip(real, row)) if a != b]
            if diff:  # the moved items lie within one window of floor(0.2 n) items
                assert diff[-1] - diff[0] < math.floor(0.2 * len(row))
                changed += 1
    assert changed > 5


def test_random_augment_is_seeded_and_mixes_the_three_kinds():
    seqs, lengths = batch_of(ROWS * 25)
    a1 = random_augment(seqs, lengths, 0.2, 0.7, 0.2, 99, torch.Generator().manual_seed(3))
    a2 = random_augment(seqs, lengths, 0.2, 0.7, 0.2, 99, torch.Generator().manual_seed(3))
    assert torch.equal(a1[0], a2[0]) and torch.equal(a1[1], a2[1])
    out, lens = a1
    cropped = (lens < lengths).sum().item()
    masked = (out == 99).any(1).sum().item()
    assert 10 < cropped < 60 and 10 < masked < 60  # each about a third of 100 rows (where visible)


def test_mean_pool_ignores_padding():
    h = torch.arange(12.0).view(2, 3, 2)
    torch.testing.assert_close(mean_pool(h, torch.tensor([1, 3])), torch.tensor([[0.0, 1.0], [8.0, 9.0]]))


def test_info_nce_matches_a_loop_reference():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    z = torch.cat([z1, z2])
    losses = []
    for i in range(8):
        pos = (i + 4) % 8
        logits = torch.stack([z[i] @ z[j] / 0.5 for j in range(8) if j != i])  # 1 positive + 6 = 2B-2 negatives
        idx = [j for j in range(8) if j != i].index(pos)
        losses.append(-F.log_softmax(logits, 0)[idx])
    torch.testing.assert_close(info_nce(z1, z2, 0.5), torch.stack(losses).mean())
    # cosine similarity only rescales the inputs
    torch.testing.assert_close(info_nce(z1, z2, 1.0, "cosine"),
                               info_nce(F.normalize(z1, dim=-1), F.normalize(z2, dim=-1), 1.0))
    # identical, well-separated views: the loss goes to 0
    e = torch.eye(4) * 20
    assert info_nce(e, e).item() < 1e-6


def make_model():
    torch.manual_seed(0)
    return CL4SRec(CL4SRecConfig(), BuildContext(num_items=30, max_len=10))


def test_model_has_a_mask_token_that_is_never_a_candidate():
    model = make_model()
    assert model.mask_token == 31
    assert model.item_embedding.weight.shape == (32, 64)
    assert model.item_weights().shape == (31, 64)


def fake_input(train, sequences, dataset="beauty", max_len=10):
    splits = types.SimpleNamespace(train=train, max_len=max_len)
    cfg = types.SimpleNamespace(data=types.SimpleNamespace(dataset=dataset))
    return types.SimpleNamespace(splits=splits, sequences=sequences, cfg=cfg)


def test_auxiliary_loss_is_weighted_seeded_and_trains_the_encoder():
    model = make_model()
    cfg = CL4SRecConfig()
    train = [np.arange(1, 9), np.arange(10, 15), np.arange(20, 27)]
    aux = cl4srec_auxiliary(cfg, fake_input(train, train))
    seqs, lengths = batch_of([list(s[:-1]) for s in train])
    batch = Batch(seqs, lengths, seqs, None, torch.arange(3))
    hidden = model(seqs, lengths)
    model.eval()  # dropout off: the generator alone decides the views
    l1 = aux(model, batch, hidden, torch.Generator().manual_seed(5))
    l2 = aux(model, batch, hidden, torch.Generator().manual_seed(5))
    assert l1.item() == pytest.approx(l2.item())
    assert l1.item() != pytest.approx(aux(model, batch, hidden, torch.Generator().manual_seed(6)).item())
    assert l1.item() > 0
    l1.backward()
    assert model.encoder.layers.layers[0].linear1.weight.grad.abs().sum() > 0
    zero = cl4srec_auxiliary(from_dict(CL4SRecConfig, {"cl_weight": 0.0}), fake_input(train, train))
    assert zero(model, batch, hidden, None).item() == 0.0


class TableModel:
    """A stand-in encoder: the hidden state at each position is a fixed 2-d vector per input token.

    Rows made of one repeated item keep their mean-pooled vector under crop and reorder (and under mask
    with rate 0), so the loss of any augmentation draw can be worked out on paper. Padding (0) maps to a
    large vector: pooling over padded positions would change every number below.
    """

    padding = "right"
    mask_token = 3

    def __init__(self):
        self.table = torch.tensor([[7.0, -3.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])

    def __call__(self, seqs, lengths):
        return self.table[seqs]


@pytest.mark.parametrize("similarity,temperature,weight,expected", [
    # pooled views z = [a, b, a, b] with a = (1, 0), b = (1, 1); NT-Xent over the 3 other views:
    #   anchor a: a.b = 1, a.a = 1 (positive), a.b = 1        -> -log(e/(3e))          = log 3
    #   anchor b: b.a = 1, b.a = 1, b.b = 2 (positive)         -> -log(e^2/(e^2 + 2e)) = log(1 + 2/e)
    #   mean of 2 x each, times 0.1: 0.1 (log 3 + log(1 + 2/e)) / 2
    ("dot", 1.0, 0.1, 0.08250285013000805),
    # temperature 0.5 doubles every similarity: (log 3 + log(1 + 2 e^-2)) / 2
    ("dot", 0.5, 1.0, 0.6690785274449972),
    # cosine: a.b = 1/sqrt(2), self-pairs 1; every anchor -> log(1 + 2 e^(1/sqrt(2) - 1)); times 0.1
    ("cosine", 1.0, 0.1, 0.09131673039115858),
])
def test_auxiliary_loss_by_hand(similarity, temperature, weight, expected):
    seqs, lengths = batch_of([[1, 1, 1, 1, 1], [2, 2, 2]])
    aux = CL4SRecLoss(weight, temperature, similarity, eta=0.2, gamma=0.0, beta=0.6)
    batch = Batch(seqs, lengths, seqs, None, torch.arange(2))
    for seed in range(5):  # any draw of crop / reorder gives the same pooled vectors
        loss = aux(TableModel(), batch, None, torch.Generator().manual_seed(seed))
        assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_original_source_uses_the_batch_users_or_random_users():
    cfg = from_dict(CL4SRecConfig, {"cl_source": "original"})
    train = [np.arange(1, 9), np.arange(10, 15), np.arange(20, 27)]
    same = cl4srec_auxiliary(cfg, fake_input(train, train))
    assert same.rows_are_users
    batch = Batch(torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 3]), torch.zeros(2, 3, dtype=torch.long),
                  None, torch.tensor([2, 0]))
    seqs, lengths = same._views_input(batch, None)
    assert lengths.tolist() == [7, 8]
    assert seqs[0, :7].tolist() == list(range(20, 27)) and seqs[1].tolist() == list(range(1, 9))
    regenerated = [np.array([1, 2]), np.array([3, 4, 5])]  # rows are patterns, not users
    other = cl4srec_auxiliary(cfg, fake_input(train, regenerated))
    assert not other.rows_are_users
    seqs, lengths = other._views_input(batch, torch.Generator().manual_seed(0))
    assert seqs.shape[0] == 2 and set(lengths.tolist()) <= {8, 5, 7}


def test_mask_rate_per_dataset_and_config_errors():
    cfg = from_dict(CL4SRecConfig, {"mask_gamma_by_dataset": {"sports": 0.4}}, "model.")
    assert cfg.mask_rate("sports") == 0.4 and cfg.mask_rate("/data/sports.txt") == 0.4
    assert cfg.mask_rate("beauty") == 0.7
    aux = cl4srec_auxiliary(cfg, fake_input([np.arange(1, 4)], [np.arange(1, 4)], dataset="sports"))
    assert aux.gamma == 0.4
    with pytest.raises(ConfigError, match="model.mask_gamma_by_dataset.toys"):
        from_dict(CL4SRecConfig, {"mask_gamma_by_dataset": {"toys": 1.5}}, "model.")
    with pytest.raises(ConfigError, match="model.cl_source"):
        from_dict(CL4SRecConfig, {"cl_source": "patterns"}, "model.")
    with pytest.raises(ConfigError, match="model.cl_temperature"):
        from_dict(CL4SRecConfig, {"cl_temperature": 0}, "model.")


def test_auxiliary_rejects_a_backbone_without_mask_token():
    from dr4sr.models.sasrec import SASRec, SASRecConfig

    model = SASRec(SASRecConfig(), BuildContext(num_items=5, max_len=4))
    aux = CL4SRecLoss(0.1, 1.0, "dot", 0.2, 0.7, 0.2)
    seqs, lengths = batch_of([[1, 2, 3]])
    with pytest.raises(ConfigError, match="mask"):
        aux(model, Batch(seqs, lengths, seqs), model(seqs, lengths), None)
