"""BERT4Rec: bidirectional attention, the Cloze masking its config asks for, the loss at masked positions,
scoring from an appended [MASK], and a smoke run whose metrics are the closed form of its saved ranks."""
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from dr4sr.cli import main
from dr4sr.config import from_dict
from dr4sr.data.batching import Cloze, TrainBatcher
from dr4sr.errors import ConfigError
from dr4sr.eval.ranking import rank_targets
from dr4sr.models.base import BuildContext
from dr4sr.models.bert4rec import BERT4Rec, BERT4RecConfig, append_mask
from dr4sr.models.registry import get_backbone
from dr4sr.models.sasrec import SASRec, SASRecConfig
from dr4sr.train.losses import next_item_loss


def model_of(num_items=20, max_len=10, **cfg):
    torch.manual_seed(0)
    return BERT4Rec(BERT4RecConfig(**{"dropout": 0.0, **cfg}), BuildContext(num_items=num_items, max_len=max_len))


def test_defaults_and_vocabulary():
    spec = get_backbone("bert4rec")
    cfg = from_dict(BERT4RecConfig, spec.default_config()["model"], "model.")
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.mask_prob) == (64, 2, 2, 0.2)
    assert spec.default_config()["train"]["loss"] == "ce"
    model = BERT4Rec(cfg, BuildContext(num_items=12, max_len=8))
    assert model.training_mode == Cloze(mask_token=13, mask_prob=0.2, last_prob=cfg.last_prob)
    assert model.item_embedding.num_embeddings == 14  # padding, 12 items, [MASK]
    assert model.item_weights().shape == (13, 64)  # [MASK] is never a candidate
    for bad in ({"mask_prob": 0.0}, {"mask_prob": 1.5}, {"last_prob": -0.1}, {"num_heads": 3}):
        with pytest.raises(ConfigError, match="model."):
            from_dict(BERT4RecConfig, bad, "model.")


def test_attention_is_bidirectional_unlike_sasrec():
    bert = model_of().eval()
    torch.manual_seed(0)
    sas = SASRec(SASRecConfig(dropout=0.0), BuildContext(num_items=20, max_len=10)).eval()
    a, b = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3, 9]])  # only the last item differs
    with torch.no_grad():
        assert not torch.allclose(bert(a, None)[0, 0], bert(b, None)[0, 0], atol=1e-4)  # seen from position 0
        torch.testing.assert_close(sas(a, None)[0, :3], sas(b, None)[0, :3])  # causal: the past is unchanged


def test_padding_keys_are_blocked():
    model = model_of().eval()
    with torch.no_grad():
        short = model(torch.tensor([[5, 6, 7]]), None)
        padded = model(torch.tensor([[5, 6, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6]]), None)
    torch.testing.assert_close(padded[0, :3], short[0], rtol=1e-4, atol=1e-5)


def cloze_rows(mask_prob, last_prob, lengths, seed=0):
    """(inputs, targets, lengths) of one epoch of BERT4Rec's own training mode over rows of these lengths."""
    mode = model_of(num_items=100, max_len=50, mask_prob=mask_prob, last_prob=last_prob).training_mode
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, 101, n) for n in lengths]
    out = [(b.inputs, b.targets, b.lengths) for b in TrainBatcher(seqs, 4096, mode, 50, seed=seed).epoch(0)]
    width = max(o[0].shape[1] for o in out)
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    return (torch.cat([pad(o[0]) for o in out]), torch.cat([pad(o[1]) for o in out]),
            torch.cat([o[2] for o in out]))


def test_masking_rate_is_mask_prob_and_padding_is_never_masked():
    inputs, targets, lengths = cloze_rows(0.2, 0.0, [50] * 2000)
    masked = targets > 0
    assert masked.float().mean().item() == pytest.approx(0.2, abs=0.006)  # 100k positions, sd 0.0013
    assert torch.equal(inputs[masked], torch.full_like(inputs[masked], 101))  # [MASK] = num_items + 1
    assert (inputs[~masked] <= 100).all()
    # short rows: at least one mask each, so n items expect n p + (1 - p)^n masks: 3 items -> 1.112
    inputs, targets, lengths = cloze_rows(0.2, 0.0, [3, 7] * 2000)
    real = torch.arange(inputs.shape[1])[None] < lengths[:, None]
    counts = (targets > 0).sum(1)
    assert (counts >= 1).all() and not (targets[~real] > 0).any() and not inputs[~real].any()
    assert counts[lengths == 3].float().mean().item() == pytest.approx(3 * 0.2 + 0.8 ** 3, abs=0.03)


def test_last_prob_rows_mask_only_their_last_item():
    inputs, targets, lengths = cloze_rows(0.2, 1.0, [2, 5, 9] * 100)
    last = torch.arange(inputs.shape[1])[None] == (lengths - 1)[:, None]
    assert torch.equal(targets > 0, last)
    _, targets, lengths = cloze_rows(0.2, 0.1, [50] * 2000, seed=1)
    only_last = ((targets > 0).sum(1) == 1) & (targets[:, 49] > 0)
    assert only_last.float().mean().item() == pytest.approx(0.1, abs=0.025)  # sd 0.0067


def test_cloze_loss_is_the_cross_entropy_at_masked_positions_over_real_items():
    """3 items, d = 2: E1 = (1, 0), E2 = (0, 1), E3 = (1, 1); [MASK]'s row (10, 10) would win every
    softmax if it were a candidate. Rows [1, 2] and [3, 1] with only the last item masked:
    row A's state (0, 2) scores (0, 2, 2), target 2: CE = ln(1 + 2e^2) - 2 = 0.758624;
    row B's state (ln 2, 0) scores (ln 2, 0, ln 2), target 1: CE = ln(5/2) = 0.916291."""
    model = model_of(num_items=3, max_len=4, hidden_size=2, num_heads=1, last_prob=1.0)
    with torch.no_grad():
        model.item_embedding.weight.copy_(torch.tensor([[7.0, 7.0], [1, 0], [0, 1], [1, 1], [10, 10]]))
    batcher = TrainBatcher([np.array([1, 2]), np.array([3, 1])], 8, model.training_mode, 4,
                           row_weights=np.array([0.5, 2.0]))
    (batch,) = list(batcher.epoch(0))
    assert batch.inputs.tolist() == [[1, 4], [3, 4]] or batch.inputs.tolist() == [[3, 4], [1, 4]]
    state = {0: [[5.0, 5.0], [0.0, 2.0]], 1: [[5.0, 5.0], [math.log(2.0), 0.0]]}  # unmasked positions: no target
    hidden = torch.tensor([state[int(r)] for r in batch.rows])
    loss, per_pos = next_item_loss(model, hidden, batch.targets, "ce")
    assert loss.item() == pytest.approx(0.8374572, abs=1e-6)  # (0.758624 + 0.916291) / 2
    assert per_pos[batch.targets == 0].abs().sum().item() == 0.0
    weighted, _ = next_item_loss(model, hidden, batch.targets, "ce", batch.weights)
    assert weighted.item() == pytest.approx(1.1059467, abs=1e-6)  # (0.5 * 0.758624 + 2 * 0.916291) / 2


def test_append_mask_known_answers():
    seqs, lengths = torch.tensor([[1, 2, 0], [3, 4, 5]]), torch.tensor([2, 3])
    out, n = append_mask(seqs, lengths, 9, max_len=4)
    assert out.tolist() == [[1, 2, 9, 0], [3, 4, 5, 9]] and n.tolist() == [3, 4]
    out, n = append_mask(seqs, lengths, 9, max_len=3)  # the full row drops its oldest item
    assert out.tolist() == [[1, 2, 9], [4, 5, 9]] and n.tolist() == [3, 3]
    out, n = append_mask(torch.tensor([[0]]), torch.tensor([0]), 9, max_len=3)  # no history: [MASK] alone
    assert out.tolist() == [[9]] and n.tolist() == [1]


def test_scoring_reads_the_appended_mask_and_ranks_only_real_items():
    model = model_of(num_items=6, max_len=4).eval()
    with torch.no_grad():
        model.item_embedding.weight[7] *= 50  # a loud [MASK]: were it a candidate it would outrank targets
        h1 = model(torch.tensor([[1, 2, 7]]), None)[0, 2]
        h2 = model(torch.tensor([[4, 5, 6, 7]]), None)[0, 3]  # at max_len: item 3 dropped for the [MASK]
        last = model.last_hidden(torch.tensor([[1, 2, 0, 0], [3, 4, 5, 6]]), torch.tensor([2, 4]))
    torch.testing.assert_close(last, torch.stack([h1, h2]), rtol=1e-4, atol=1e-5)
    histories, targets = [np.array([1, 2]), np.array([3, 4, 5, 6])], np.array([3, 1])
    expected = []
    with torch.no_grad():
        for h, hist, t in zip((h1, h2), histories, targets):
            scores = model.item_weights()[1:] @ h  # items 1..6 only
            rivals = [i for i in range(1, 7) if i not in hist and i != t]
            expected.append(1 + sum(bool(scores[i - 1] > scores[t - 1]) for i in rivals))
    assert rank_targets(model, histories, targets, max_len=4).tolist() == expected


def test_smoke_train_writes_metrics_that_are_the_closed_form_of_its_ranks(tiny_dataset, tmp_path):
    out = tmp_path / "bert4rec-smoke"
    assert main(["train", "--dataset", str(tiny_dataset), "--backbone", "bert4rec", "--smoke-test",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    ranks = np.array(pq.read_table(out / "user_metrics.parquet").to_pydict()["rank"], dtype=float)
    assert len(ranks) == 60 and ranks.min() >= 1 and ranks.max() <= 40
    for k in (10, 20):
        assert metrics["test"][f"recall@{k}"] == pytest.approx(float(np.mean(ranks <= k)), abs=1e-12)
        assert metrics["test"][f"ndcg@{k}"] == pytest.approx(
            float(np.mean(np.where(ranks <= k, 1 / np.log2(ranks + 1), 0.0))), abs=1e-12)
    assert metrics["epochs"] == 2 and math.isfinite(metrics["history"][-1]["loss"])
    lines = [ln.split() for ln in tiny_dataset.read_text().splitlines()]
    train_items = sum(len(ln) - 3 for ln in lines)  # leave-one-out: the last two items are valid and test
    assert metrics["train_targets"] == train_items  # every item of every row can be masked
