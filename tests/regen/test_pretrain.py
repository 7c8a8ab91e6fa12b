import dataclasses

import numpy as np
import pytest
import torch
from planted import FAST, NUM_ITEMS, PLANTED, SMALL, planted_data, planted_pairs

from dr4sr.errors import DR4SRError
from dr4sr.regen.config import PretrainConfig, RegenerateConfig
from dr4sr.regen.decode import decode_batch
from dr4sr.regen.model import Regenerator
from dr4sr.regen.pairs import PairBatcher
from dr4sr.regen.pretrain import PretrainInput, temperature, token_loss


def test_pairs_map_user_ids_to_rows_and_collate_bos_eos():
    seqs, users, which = planted_data(20)
    data = planted_pairs(seqs, users, which)
    assert len(data) == sum(len(w) for w in which)
    assert data.pair_row[0] == 0 and data.pair_pattern[0] == which[0][0]
    b = PairBatcher(data, 8, bos=NUM_ITEMS + 1, eos=NUM_ITEMS + 2, shuffle=False).collate(np.array([0]))
    pat = list(PLANTED[which[0][0]])
    assert b.dec_in[0, : len(pat) + 1].tolist() == [NUM_ITEMS + 1] + pat
    assert b.dec_out[0, : len(pat) + 1].tolist() == pat + [NUM_ITEMS + 2]
    assert b.src[0, : len(seqs[0])].tolist() == seqs[0].tolist()
    with pytest.raises(DR4SRError, match="user id 5"):
        from dr4sr.regen.pairs import build_pair_data
        build_pair_data(seqs, users, [np.array([1, 2])], np.array([5]), np.array([0]))


def test_ranks_split_every_global_batch():
    seqs, users, which = planted_data(50)
    data = planted_pairs(seqs, users, which)
    one = PairBatcher(data, 16, 41, 42, seed=3)
    ranks = [PairBatcher(data, 16, 41, 42, seed=3, rank=r, world_size=2) for r in range(2)]
    for g, a, b in zip(one.global_batches(1), *(r.global_batches(1) for r in ranks)):
        assert np.array_equal(g, a) and np.array_equal(g, b)
    rows = [int(x) for r in ranks for batch in r.global_batches(1) for x in batch[r.rank::2]]
    assert sorted(rows) == list(range(len(data)))


def test_holdout_is_seeded_and_disjoint():
    data = planted_pairs(*planted_data(100))
    t1, v1 = data.split(0.05, 0)
    t2, v2 = data.split(0.05, 0)
    assert np.array_equal(v1.pair_row, v2.pair_row) and len(v1) == round(len(data) * 0.05)
    assert len(t1) + len(v1) == len(data)


def _model_and_batch():
    """An untrained small regenerator and the first batch of 30 planted sequences' pairs."""
    seqs, users, which = planted_data(30)
    torch.manual_seed(0)
    m = Regenerator(SMALL, NUM_ITEMS).eval()
    return m, next(PairBatcher(planted_pairs(seqs, users, which), 64, m.bos, m.eos).epoch(0)), which


def test_restricted_loss_is_lower_and_temperature_anneals():
    m, batch, which = _model_and_batch()
    restricted, n, _ = token_loss(m, m, batch, 1.0, True)
    full, n2, _ = token_loss(m, m, batch, 1.0, False)
    assert n == n2 == sum(len(PLANTED[p]) + 1 for w in which for p in w)
    assert restricted < full  # softmax over ~10 source items instead of 42 tokens
    assert np.isclose(full.item() / n, np.log(NUM_ITEMS + 1), rtol=0.1)  # near-uniform at init
    cfg = PretrainConfig()
    assert temperature(cfg, 0, 100) == 1.0 and np.isclose(temperature(cfg, 99, 100), 0.1)


def test_pretraining_loss_falls(trained):
    _, out = trained
    hist = out["metrics"]["history"]
    assert len(hist) == FAST.max_epochs
    assert hist[-1]["valid_loss"] < 0.3 * hist[0]["valid_loss"], [h["valid_loss"] for h in hist]
    assert hist[-1]["tau"] < 0.15


def test_regenerator_recovers_planted_patterns(trained, planted):
    model, _ = trained
    seqs, users, which = planted
    out = decode_batch(model, seqs, users, RegenerateConfig(gamma=0.0, max_length=6))
    hit = [all(PLANTED[p] in {tuple(x.tolist()) for x in row} for p in w) for row, w in zip(out, which)]
    single = [h for h, w in zip(hit, which) if len(w) == 1]
    assert np.mean(single) > 0.9, np.mean(single)
    assert np.mean(hit) > 0.75, np.mean(hit)


def test_k_memories_give_different_patterns(trained, planted):
    model, _ = trained
    seqs, users, which = planted
    two = [i for i, w in enumerate(which) if len(w) == 2]
    out = decode_batch(model, [seqs[i] for i in two], users[two], RegenerateConfig(gamma=0.0, max_length=6))
    distinct = [len({tuple(p.tolist()) for p in row}) for row in out]
    assert np.mean([d >= 2 for d in distinct]) > 0.6, distinct


def test_vanilla_model_pretrains_too():
    seqs, users, which = planted_data(60)
    train, valid = planted_pairs(seqs, users, which).split(0.1, 0)
    from dr4sr.regen.pretrain import pretrain_local

    cfg = dataclasses.replace(SMALL, diversity=False)
    out = pretrain_local(PretrainInput(cfg, dataclasses.replace(FAST, max_epochs=3), NUM_ITEMS, train, valid),
                         log=lambda *_: None)
    h = out["metrics"]["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"] and "memory_mlp.0.weight" not in out["model_state"]


@pytest.mark.slow
def test_ray_train_two_workers_follow_local_curve(ray_session, tmp_path):
    """DDP (gloo, 2 workers) on the same global batches: same loss curve as the local loop."""
    from dr4sr.regen.pretrain import pretrain_local, pretrain_ray

    seqs, users, which = planted_data(120)
    train, valid = planted_pairs(seqs, users, which).split(0.1, 0)
    cfg = dataclasses.replace(SMALL, dropout=0.0, diversity=False)  # no dropout/Gumbel noise: comparable
    pre = dataclasses.replace(FAST, max_epochs=3)
    inp = PretrainInput(cfg, pre, NUM_ITEMS, train, valid, checkpoint_dir=str(tmp_path / "ckpt"))
    local = pretrain_local(inp, log=lambda *_: None)["metrics"]["history"]
    ddp = pretrain_ray(inp, 2, False, str(tmp_path / "ray"))
    hist = ddp["metrics"]["history"]
    assert ddp["metrics"]["world_size"] == 2 and len(hist) == 3
    a = np.array([h["valid_loss"] for h in local])
    b = np.array([h["valid_loss"] for h in hist])
    assert np.all(np.abs(a - b) / a < 0.03), (a, b)
    assert (tmp_path / "ckpt" / "last.pt").exists()


def test_candidate_softmax_equals_masked_full_softmax():
    """The restricted loss scores only each row's candidates; it must equal the masked full-vocab CE."""
    import torch.nn.functional as F

    m, batch, _ = _model_and_batch()
    fast, _, _ = token_loss(m, m, batch, 1.0, True)
    sel = batch.dec_out > 0
    logits, _ = m(batch.src, batch.dec_in, batch.pattern, 1.0, sel)
    allowed = torch.zeros(sel.size(0), m.vocab, dtype=torch.bool)
    allowed.scatter_(1, batch.src, True)
    allowed.scatter_(1, batch.pattern, True)
    allowed[:, m.eos] = True
    allowed[:, [0, m.bos]] = False
    row = torch.arange(sel.size(0))[:, None].expand_as(sel)[sel]
    slow = F.cross_entropy(logits.masked_fill(~allowed[row], float("-inf")), batch.dec_out[sel], reduction="sum")
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-4)
