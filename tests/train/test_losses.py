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


def test_bce_one_negative_per_position(model):
    hidden = torch.randn(1, 2, 64)
    targets = torch.tensor([[3, 4]])
    g = torch.Generator().manual_seed(1)
    loss, per_pos = next_item_loss(model, hidden, targets, "bce", generator=g)
    neg = torch.randint(1, 21, (2,), generator=torch.Generator().manual_seed(1))
    W = model.item_weights()
    expected = [torch.nn.functional.softplus(-(hidden[0, i] @ W[targets[0, i]]))
                + torch.nn.functional.softplus(hidden[0, i] @ W[neg[i]]) for i in range(2)]
    assert per_pos[0].tolist() == pytest.approx([e.item() for e in expected], rel=1e-5)


class OneDimModel:
    """Items 1 and 2 with 1-d embeddings; row 0 is padding. Enough for next_item_loss."""

    def __init__(self, item_w):
        self.w = torch.tensor(item_w).view(-1, 1)
        self.num_items = self.w.size(0) - 1

    def item_weights(self):
        return self.w


# one row: targets 1, 2 and a padded position; weights 2, 0.5 and 7 (the padded one must not count)
TARGETS = torch.tensor([[1, 2, 0]])
WEIGHTS = torch.tensor([[2.0, 0.5, 7.0]])


def test_weighted_ce_by_hand():
    # embeddings 1 and -1, hidden h = ln(2)/2 everywhere: logits h and -h, so by hand
    #   CE(target 1) = log(1 + e^(-2h)) = log(1.5),  CE(target 2) = log(1 + e^(2h)) = log(3)
    # weighted mean over the 2 real positions: (2 log 1.5 + 0.5 log 3) / 2 = 0.6801181802751919
    # (not / 2.5, the weight sum; the padded position's weight 7 multiplies a masked-out loss)
    model = OneDimModel([0.0, 1.0, -1.0])
    hidden = torch.full((1, 3, 1), math.log(2) / 2)
    loss, per_pos = next_item_loss(model, hidden, TARGETS, "ce", weights=WEIGHTS)
    assert per_pos[0].tolist() == pytest.approx([0.4054651081081644, 1.0986122886681098, 0.0], rel=1e-6)
    assert loss.item() == pytest.approx(0.6801181802751919, rel=1e-6)
    plain, _ = next_item_loss(model, hidden, TARGETS, "ce")  # unweighted: (log 1.5 + log 3) / 2
    assert plain.item() == pytest.approx(0.7520386983881371, rel=1e-6)


def test_weighted_bce_by_hand():
    # both items embed as 1 and h = ln 2: whichever negative is drawn, its logit equals the positive's,
    #   softplus(-ln 2) + softplus(ln 2) = log(1.5) + log(3) = log(4.5) per real position
    # weighted mean over the 2 real positions: (2 + 0.5) log(4.5) / 2 = 1.8800967459703428
    model = OneDimModel([0.0, 1.0, 1.0])
    hidden = torch.full((1, 3, 1), math.log(2))
    loss, per_pos = next_item_loss(model, hidden, TARGETS, "bce", weights=WEIGHTS,
                                   generator=torch.Generator().manual_seed(1))
    assert per_pos[0].tolist() == pytest.approx([1.5040773967762742, 1.5040773967762742, 0.0], rel=1e-6)
    assert loss.item() == pytest.approx(1.8800967459703428, rel=1e-6)


def test_unknown_loss_is_a_config_error(model):
    with pytest.raises(ConfigError, match="unknown loss"):
        next_item_loss(model, torch.randn(1, 1, 64), torch.tensor([[1]]), "hinge")
