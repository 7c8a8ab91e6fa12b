"""Epoch ETA by the early-stopping rule and the max-epoch bound; stage lines with elapsed time."""
from __future__ import annotations

import io

from dr4sr.train.progress import EpochProgress, StageClock, epochs_left, eta_text, fmt_seconds


def test_epochs_left_follows_the_patience_rule():
    # patience 20, best at epoch 35, now epoch 40: 5 bad epochs so far, 15 more without a new best
    assert epochs_left(40, 35, 20, 1000) == (15, 959)
    assert epochs_left(0, 0, 20, 1000) == (20, 999)  # a new best resets the count
    assert epochs_left(995, 990, 20, 1000) == (4, 4)  # the max-epoch bound comes first
    assert epochs_left(54, 35, 20, 1000) == (1, 945)  # one more bad epoch stops it
    assert epochs_left(3, 1, None, 10) == (6, 6)  # no patience: only the bound


def test_eta_text_gives_both_ends():
    assert eta_text(40, 35, 20, 1000, 4.0) == \
        "stops in 15 epochs (~1m00s) without a new best, <= 1h03m at the 1000-epoch bound"
    assert eta_text(0, 0, 2, 2, 3.0) == "1 epoch left (~0m03s)"
    assert eta_text(1, 1, 2, 2, 3.0) == "last epoch"
    assert fmt_seconds(3599.6) == "1h00m" and fmt_seconds(61) == "1m01s"


def test_epoch_line_uses_the_mean_of_recent_epochs():
    out = io.StringIO()
    p = EpochProgress(100, 10, stream=out, patience=5)
    for epoch, secs in enumerate([10.0, 2.0, 2.0, 2.0, 2.0, 2.0]):  # the first epoch (warm-up) drops out
        p.end_epoch({"epoch": epoch, "best_epoch": 0, "loss": 0.5, "seconds": secs, "valid_ndcg@20": 0.01},
                    "ndcg@20", 0.02)
    last = out.getvalue().splitlines()[-1]
    assert last == ("epoch    5 | loss 0.5000 | valid ndcg@20 0.0100 (best 0.0200 @ 0) | 2.0s | "
                    "stops now: no new best in 5 epochs")
    # epoch 4, best 0: 1 left; bound: 95 epochs x mean(10, 2, 2, 2, 2) = 95 x 3.6 s = 342 s
    assert out.getvalue().splitlines()[4].endswith(
        "stops in 1 epoch (~0m04s) without a new best, <= 5m42s at the 100-epoch bound")
    assert len(out.getvalue().splitlines()) == 6  # one line per epoch


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    p = EpochProgress(3, 1, enabled=False, stream=out)
    assert list(p.batches(0, [1, 2])) == [1, 2]
    p.line(0, 0, 1.0, "x")
    assert out.getvalue() == ""


def test_stage_clock_lines():
    lines = []
    clock = StageClock(5, lines.append)
    clock.start(3, "pretrain regenerator", "~2m00s")
    clock.finish(3, "pretrain regenerator")
    assert lines[0] == "[3/5] pretrain regenerator (~2m00s) ..."
    assert lines[1].startswith("[3/5] pretrain regenerator: done in 0m00s (total 0m00s)")
