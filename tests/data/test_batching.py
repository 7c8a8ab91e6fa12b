import numpy as np

from dr4sr.data.batching import TrainBatcher, pad_sequences


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


def test_epochs_shuffle_differently_but_reproducibly():
    seqs = [np.arange(1, 3 + i % 5) for i in range(100)]
    a = [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(0)]
    assert a == [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(0)]
    assert a != [b.rows.tolist() for b in TrainBatcher(seqs, 10, seed=1).epoch(1)]
