import numpy as np

from dr4sr.data.batching import Cloze, TrainBatcher, pad_sequences, scoring_mode


def test_pad_sequences_sides():
    right, lens = pad_sequences([np.array([1, 2, 3]), np.array([4])], "right")
    left, _ = pad_sequences([np.array([1, 2, 3]), np.array([4])], "left")
    assert right.tolist() == [[1, 2, 3], [4, 0, 0]] and lens.tolist() == [3, 1]
    assert left.tolist() == [[1, 2, 3], [0, 0, 4]]


def test_seq2seq_rows_cover_every_target_once_per_epoch():
    seqs = [np.arange(1, n + 1) for n in (2, 3, 5, 1, 8)]
    b = TrainBatcher(seqs, batch_size=2, mode="seq2seq")
    assert b.skipped_rows == 1  # the length-1 row has no target
    seen = []
    for batch in b.epoch(0):
        mask = batch.targets > 0
        # input position j predicts the item after it
        assert (batch.targets[mask] == batch.inputs[mask] + 1).all()
        assert (batch.lengths == mask.sum(1)).all()
        seen += batch.targets[mask].tolist()
    assert sorted(seen) == sorted(sum((list(range(2, n + 1)) for n in (2, 3, 5, 8)), []))
    assert b.num_targets() == len(seen)


def test_last_mode_expands_prefixes_left_padded():
    b = TrainBatcher([np.array([1, 2, 3])], batch_size=8, mode="last")
    (batch,) = list(b.epoch(0))
    pairs = sorted((tuple(r), int(t)) for r, t in zip(batch.inputs.tolist(), batch.targets[:, 0].tolist()))
    assert pairs == [((0, 1), 2), ((1, 2), 3)]


def test_ddp_shards_partition_the_global_batch():
    seqs = [np.arange(1, 3 + i % 7) for i in range(37)]
    full = TrainBatcher(seqs, batch_size=8, seed=3)
    shards = [TrainBatcher(seqs, batch_size=8, seed=3, rank=r, world_size=2) for r in range(2)]
    for g, b0, b1 in zip(full.epoch(1), shards[0].epoch(1), shards[1].epoch(1)):
        assert sorted(g.rows.tolist()) == sorted(b0.rows.tolist() + b1.rows.tolist())
        assert len(b0.rows) and len(b1.rows)


def test_a_tail_smaller_than_the_world_joins_its_neighbour_and_every_row_trains_once():
    seqs = [np.arange(1, 3 + i % 7) for i in range(41)]  # batch 8: a tail of one row, fewer than 2 ranks
    shards = [TrainBatcher(seqs, batch_size=8, seed=3, rank=r, world_size=2) for r in range(2)]
    rows = [r for s in shards for b in s.epoch(0) for r in b.rows.tolist()]
    assert sorted(rows) == list(range(41))


def test_epochs_shuffle_differently_but_reproducibly():
    seqs = [np.arange(1, 3 + i % 5) for i in range(100)]
    a = [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(0)]
    assert a == [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(0)]
    assert a != [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(1)]


def _masks(batches):
    """{row: (inputs, targets)} of every row of these Cloze batches, padding cut off."""
    out = {}
    for b in batches:
        for r, x, t, n in zip(b.rows.tolist(), b.inputs.tolist(), b.targets.tolist(), b.lengths.tolist()):
            out[r] = (x[:n], t[:n])
    return out


def test_cloze_masks_are_per_row_the_same_on_any_rank_and_on_a_rerun():
    seqs = [np.arange(1, 3 + i % 9) for i in range(41)]
    mode = Cloze(mask_token=99, mask_prob=0.3)
    one = _masks(TrainBatcher(seqs, 8, mode, seed=3).epoch(2))
    shards = [_masks(TrainBatcher(seqs, 8, mode, seed=3, rank=r, world_size=2).epoch(2)) for r in range(2)]
    assert one == {**shards[0], **shards[1]} and len(one) == 41
    assert one == _masks(TrainBatcher(seqs, 8, mode, seed=3).epoch(2))
    assert one != _masks(TrainBatcher(seqs, 8, mode, seed=3).epoch(3))
    for r, (x, t) in one.items():  # a masked position holds the token and targets the row's item there
        row = seqs[r].tolist()
        assert [xi if ti == 0 else ti for xi, ti in zip(x, t)] == row
        assert all((xi == 99) == (ti > 0) for xi, ti in zip(x, t))


def test_cloze_probe_masks_every_item_once_and_knows_its_position():
    seqs = [np.arange(10, 10 + n) for n in (1, 2, 4, 7)]  # max_len 5: the 7-item row keeps its last 6, inputs 5
    b = TrainBatcher(seqs, 4, scoring_mode(Cloze(mask_token=99)), max_len=5)
    assert b.num_targets() == b.num_rows == 2 + 4 + 5
    assert TrainBatcher(seqs, 4, Cloze(mask_token=99), max_len=5).num_targets() == b.num_targets()
    seen = set()
    for rows in np.array_split(np.arange(b.num_rows), 3):
        batch = b.collate(rows)
        pos = b.target_positions(rows, batch.targets.shape[1])
        assert ((batch.targets > 0).sum(1) == 1).all() and ((batch.inputs == 99) == (batch.targets > 0)).all()
        for i, j in zip(*np.nonzero(batch.targets.numpy() > 0)):
            held = b.sequences[b.row_seq[rows[i]]]
            assert held[pos[i, j]] == batch.targets[i, j]  # the index of the target in the held row
            seen.add((int(b.row_seq[rows[i]]), int(batch.targets[i, j])))
    assert seen == {(s, int(v)) for s in (1, 2, 3) for v in seqs[s][-5:]}
