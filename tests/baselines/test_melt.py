"""MELT's parts on hand-sized data: the head/tail split, the contexts, the user branch, and the inference
routing (tail users through W_U, tail items rewritten through W_I) as the training loop's evaluation sees it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dr4sr.baselines.longtail import ItemContexts, padded, split_head_tail
from dr4sr.baselines.melt import MeltSetup
from dr4sr.data.datasets import load_dataset
from dr4sr.data.splits import leave_one_out
from dr4sr.models.base import BuildContext
from dr4sr.models.registry import build_backbone
from dr4sr.train.config import MeltConfig, RunConfig, TrainConfig
from dr4sr.train.loop import LoopContext, evaluate

# lengths 3 4 5 6 10; item counts: 1:7 2:5 3:4 4:3 5:3 6:2 7:2 8:1 9:1, item 10 never occurs
SEQS = [np.array(s) for s in ([1, 2, 3], [1, 2, 4, 5], [1, 2, 3, 4, 6], [1, 3, 5, 2, 1, 7],
                              [1, 2, 3, 4, 5, 6, 7, 8, 9, 1])]


def test_split_matches_hand_computed_quantiles():
    split = split_head_tail(SEQS, num_items=10, pareto=0.8, item_pareto_offset=0.02)
    # lengths sorted 3 4 5 6 10: the 0.8 quantile sits at 3.2 of 4 steps -> 6 + 0.2 * (10 - 6)
    assert split.user_threshold == pytest.approx(6.8)
    assert split.head_users.tolist() == [4] and split.tail_user.tolist() == [True] * 4 + [False]
    # counts of the 9 items that occur, sorted 1 1 2 2 3 3 4 5 7: the 0.78 quantile at 6.24 -> 4 + 0.24
    assert split.item_threshold == pytest.approx(4.24)
    assert split.head_items.tolist() == [1, 2]
    assert np.flatnonzero(split.tail_item).tolist() == [3, 4, 5, 6, 7, 8, 9, 10]  # 10: absent, tail
    assert split.summary() == {"user_threshold": pytest.approx(6.8), "item_threshold": pytest.approx(4.24),
                               "head_users": 1, "tail_users": 4, "head_items": 2, "tail_items": 8}
    median = split_head_tail(SEQS, 10, pareto=0.5, item_pareto_offset=0.0)
    assert median.user_threshold == 5 and median.head_users.tolist() == [3, 4]
    assert median.item_threshold == 3 and median.head_items.tolist() == [1, 2, 3]


def _contexts(ctx: ItemContexts, item: int) -> list[list[int]]:
    seqs, lens = ctx.build(ctx.start[item] + np.arange(ctx.count[item]))
    return sorted(row[:n].tolist() for row, n in zip(seqs, lens))


def test_contexts_are_prefixes_and_reversed_suffixes_ending_at_the_item():
    seqs = [np.array(s) for s in ([5], [5, 6], [7, 5, 6, 8])]
    ctx = ItemContexts(seqs, padded(seqs), num_items=8, max_len=3)
    # [5] alone: its prefix only; [5, 6]: [5] and [6, 5]; [7, 5, 6, 8]: [7, 5] and [8, 6, 5] (cut to 3)
    assert _contexts(ctx, 5) == sorted([[5], [5], [6, 5], [7, 5], [8, 6, 5]])
    assert _contexts(ctx, 8) == sorted([[5, 6, 8], [8]])  # prefix cut to its last 3 items
    left, lens = ctx.build(np.array([ctx.start[6]]), side="left")
    assert lens.tolist() == [2] and left[0].tolist() == [5, 6]
    assert ctx.count.tolist() == [0, 0, 0, 0, 0, 5, 4, 2, 2]


@pytest.fixture
def melt_run(tiny_dataset):
    torch.manual_seed(0)
    splits = leave_one_out(load_dataset(str(tiny_dataset)), 50)
    model = build_backbone("sasrec", {"hidden_size": 16, "num_layers": 1, "num_heads": 1, "inner_size": 32,
                                      "dropout": 0.0}, BuildContext(splits.num_items, splits.max_len))
    cfg = RunConfig(train=TrainConfig(batch_size=16), melt=MeltConfig(enabled=True, pareto=0.5))
    hook = MeltSetup(cfg, splits.train, splits.num_items, splits.max_len).hook("bce")
    hook.start(model, LoopContext())
    return splits, model, hook


def test_user_branch_loss_decreases(melt_run):
    splits, model, hook = melt_run
    hook._new_epoch(0)
    users = hook.split.head_users
    opt = torch.optim.Adam([*model.parameters(), *hook.lower_parameters()], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = hook.user_loss(model, users, epoch=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_tail_users_alone_go_through_w_u_at_evaluation(melt_run):
    splits, model, hook = melt_run
    ctx = LoopContext()
    tail = np.array([len(t) for t in splits.train]) <= hook.split.user_threshold  # by the training length
    assert 0 < tail.sum() < len(tail)
    for stage in ("valid", "test"):
        hist = splits.history(stage)
        seqs = torch.from_numpy(padded(hist))
        lens = torch.tensor([len(h) for h in hist])
        before = hook.ranking_model(model, stage).last_hidden(seqs, lens).detach()
        _, ranks_before = evaluate(model, splits, stage, ctx, 64, hook)
        saved = hook.branches.w_u.weight.detach().clone()
        with torch.no_grad():
            hook.branches.w_u.weight.add_(torch.randn_like(saved))
        after = hook.ranking_model(model, stage).last_hidden(seqs, lens).detach()
        _, ranks_after = evaluate(model, splits, stage, ctx, 64, hook)
        with torch.no_grad():
            hook.branches.w_u.weight.copy_(saved)
        changed = (after - before).abs().amax(1) > 0
        assert changed.numpy().tolist() == tail.tolist()
        plain = model.last_hidden(seqs, lens).detach()
        assert torch.equal(before[~torch.from_numpy(tail)], plain[~torch.from_numpy(tail)])
        assert np.array_equal(ranks_before[~tail], ranks_after[~tail]) and (ranks_before != ranks_after)[tail].any()


@pytest.mark.parametrize("keep_old", [0.0, 0.3])
def test_tail_items_are_rewritten_from_their_contexts_through_w_i(melt_run, keep_old):
    splits, model, hook = melt_run
    hook.cfg.keep_old = keep_old  # the paper's q_i <- W_I(r_i) + gamma q_i; 0: replaced, as the authors' code
    model.eval()
    emb = model.item_weights().detach().clone()
    tail = hook.split.tail_item
    expected = {}
    for item in np.flatnonzero(tail)[:5]:  # a reference: each context encoded alone, from the raw sequences
        contexts = []
        for s in splits.train:
            for p in np.flatnonzero(s == item):
                contexts.append(s[max(0, p - 49):p + 1])
                if len(s) > 1:
                    contexts.append(s[p:p + 50][::-1].copy())
        with torch.no_grad():
            h = torch.stack([model.last_hidden(torch.tensor(c)[None], torch.tensor([len(c)]))[0] for c in contexts])
            expected[item] = hook.branches.w_i(h.mean(0)) + keep_old * emb[item]
    hook.start_epoch(model, epoch=0)
    new = model.item_weights().detach()
    assert torch.equal(new[~torch.from_numpy(tail)], emb[~torch.from_numpy(tail)])
    for item, value in expected.items():
        assert torch.allclose(new[item], value, atol=1e-5)


def test_melt_section_changes_train_ids_only_when_enabled():
    from dr4sr.artifacts import artifact_id
    from dr4sr.train.runner import build_run_config, train_key

    inputs = {"splits": "x", "sequences": "original"}
    off = build_run_config("sasrec", "beauty", {"melt": {"lambda_user": 0.5}})
    on = build_run_config("sasrec", "beauty", {"melt": {"enabled": True}})
    assert artifact_id("train", train_key(off), inputs) == "33321747d4500350"  # SASRec's id before MELT existed
    assert artifact_id("train", train_key(on), inputs) != "33321747d4500350"


def test_curriculum_moves_from_the_longest_heads_to_those_nearest_the_threshold():
    from dr4sr.baselines.melt import curriculum

    step = np.pi / (2 * (50 - 8 - 1))  # users: max_len 50, threshold 8
    sizes = np.array([9, 50])  # just above the threshold, and the longest
    assert curriculum(0, 180, sizes, 8.0, step) == pytest.approx([0.0, 1.0], abs=1e-12)
    assert curriculum(180, 180, sizes, 8.0, step) == pytest.approx([1.0, 0.0], abs=1e-12)
    assert curriculum(90, 180, sizes, 8.0, step) == pytest.approx([np.sqrt(0.5)] * 2)


def test_init_from_loads_a_backbone_run_and_names_a_wrong_file(melt_run, tmp_path):
    from dr4sr.errors import ConfigError
    from dr4sr.train.config import MeltConfig

    splits, model, hook = melt_run
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = build_backbone("sasrec", {"hidden_size": 16, "num_layers": 1, "num_heads": 1, "inner_size": 32},
                           BuildContext(splits.num_items, splits.max_len))
    hook.cfg = MeltConfig(enabled=True, init_from=str(tmp_path / "model.pt"))
    hook.start(fresh, LoopContext())
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    wider = build_backbone("sasrec", {"hidden_size": 32}, BuildContext(splits.num_items, splits.max_len))
    with pytest.raises(ConfigError, match="melt.init_from .*not this model's weights"):
        hook.start(wider, LoopContext())
