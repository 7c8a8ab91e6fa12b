import math

import pytest
import torch

from dr4sr.errors import ConfigError
from dr4sr.models.base import BuildContext
from dr4sr.models.sasrec import SASRec, SASRecConfig
from dr4sr.train.losses import next_item_loss


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SASRec(SASRecConfig(dropout=0.0), BuildContext(num_items=20, max_len=10))


def test_ce_matches_manual_softmax_and_ignores_padding(model):
    hidden = torch.randn(2, 3, 64)
    targets = torch.tensor([[3, 4, 0], [5, 0, 0]])
    loss, per_pos = next_item_loss(model, hidden, targets, "ce")
    logits = hidden @ model.item_weights().t()
    logits[..., 0] = -math.inf
    manual = [-torch.log_softmax(logits[b, t], -1)[targets[b, t]] for b, t in ((0, 0), (0, 1), (1, 0))]
    assert loss.item() == pytest.approx(torch.stack(manual).mean().item(), rel=1e-5)
    assert per_pos[0, 2] == 0 and per_pos[1, 1] == 0


def test_bce_one_negative_and_weights(model):
    hidden = torch.randn(1, 2, 64)
    targets = torch.tensor([[3, 4]])
    g = torch.Generator().manual_seed(1)
    loss, per_pos = next_item_loss(model, hidden, targets, "bce", generator=g)
    neg = torch.randint(1, 21, (2,), generator=torch.Generator().manual_seed(1))
    W = model.item_weights()
    expected = [torch.nn.functional.softplus(-(hidden[0, i] @ W[targets[0, i]]))
                + torch.nn.functional.softplus(hidden[0, i] @ W[neg[i]]) for i in range(2)]
    assert per_pos[0].tolist() == pytest.approx([e.item() for e in expected], rel=1e-5)
    # weights scale each position; the mean is over positions, not over weights
    w = torch.tensor([[2.0, 0.0]])
    wl, _ = next_item_loss(model, hidden, targets, "bce", weights=w, generator=torch.Generator().manual_seed(1))
    assert wl.item() == pytest.approx(2 * expected[0].item() / 2, rel=1e-5)


def test_unknown_loss_is_a_config_error(model):
    with pytest.raises(ConfigError, match="unknown loss"):
        next_item_loss(model, torch.randn(1, 1, 64), torch.tensor([[1]]), "hinge")
