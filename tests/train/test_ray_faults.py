"""A Ray Train worker SIGKILLed mid-epoch (2 CPU workers, gloo): Ray restarts the worker group from the
last reported checkpoint, the run finishes, and its results equal an uninterrupted run's.

Tolerance: exact. Each resume restores every rank's RNG state (target training) or reseeds per epoch
(pre-training), and the batches of an epoch depend only on (seed, epoch), so the restarted run repeats
the same floating-point operations on the same data."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import ray.cloudpickle  # noqa: E402

from dr4sr.config import parse_overrides
from dr4sr.train.ray_train import run_on_ray_train
from dr4sr.train.runner import build_run_config, prepare_splits
from dr4sr.train.worker import TrainingInput, run_worker

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module

SETTINGS = ["train.batch_size=32", "train.max_epochs=4", "train.patience=10", "train.lr=0.003"]  # dropout on


def killing(fit_fn, marker: str, kill_at: int, model_of):
    """`fit_fn`, except that on the first attempt rank 1 SIGKILLs itself at its `kill_at`-th training
    forward pass (mid-epoch); `marker` records each attempt. Pickled by value, so Ray workers get it."""

    def fit(inp, ctx):
        with open(marker, "a") as f:
            f.write(f"attempt rank {ctx.rank}\n")
        first = open(marker).read().count(f"rank {ctx.rank}\n") == 1
        if ctx.rank == 1 and first:
            calls = []

            def hook(module, args):
                if module.training:
                    calls.append(1)
                    if len(calls) == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)

            ctx.wrap = _hooked(ctx.wrap, hook, model_of)
        return fit_fn(inp, ctx)

    return fit


def _hooked(wrap, hook, model_of):
    def wrapped(model):
        model_of(model).register_forward_pre_hook(hook)
        return wrap(model)
    return wrapped


def _attempts(marker: Path) -> int:
    return marker.read_text().count("rank 0\n")


@pytest.mark.slow
def test_target_training_survives_a_killed_worker(tiny_dataset, tmp_path, ray_session):
    cfg = build_run_config("sasrec", str(tiny_dataset), parse_overrides(SETTINGS))
    splits = prepare_splits(cfg)
    inp = TrainingInput(cfg, splits, splits.train)
    clean = run_on_ray_train(run_worker, inp, 2, False, str(tmp_path / "clean"), "clean")
    marker = tmp_path / "attempts.txt"
    # 60 rows, global batch 32: 2 batches per epoch, each split over the ranks; forward 3 is in epoch 1
    fit = killing(run_worker, str(marker), 3, lambda m: m)
    hurt = run_on_ray_train(fit, inp, 2, False, str(tmp_path / "hurt"), "hurt", max_failures=1)
    assert _attempts(marker) == 2  # killed once, restarted once
    a, b = clean["metrics"], hurt["metrics"]
    assert [h["epoch"] for h in b["history"]] == [0, 1, 2, 3]  # each epoch once
    assert [h["loss"] for h in b["history"]] == [h["loss"] for h in a["history"]]
    assert b["test"] == a["test"] and b["valid"] == a["valid"]
    assert np.array_equal(hurt["ranks"], clean["ranks"])


@pytest.mark.slow
def test_regenerator_pretraining_survives_a_killed_worker(tmp_path, ray_session):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "regen"))
    from planted import FAST, NUM_ITEMS, SMALL, planted_data, planted_pairs

    from dr4sr.regen.pretrain import PretrainInput, pretrain_fit

    seqs, users, which = planted_data(120)
    train, valid = planted_pairs(seqs, users, which).split(0.1, 0)
    inp = PretrainInput(SMALL, dataclasses.replace(FAST, max_epochs=3), NUM_ITEMS, train, valid)
    clean = run_on_ray_train(pretrain_fit, inp, 2, False, str(tmp_path / "clean"), "clean")
    marker = tmp_path / "attempts.txt"
    per_epoch = -(-len(train) // (2 * FAST.batch_size))  # batches per rank per epoch
    fit = killing(pretrain_fit, str(marker), per_epoch + 1, lambda m: m)  # first batch of epoch 1
    hurt = run_on_ray_train(fit, inp, 2, False, str(tmp_path / "hurt"), "hurt", max_failures=1)
    assert _attempts(marker) == 2
    a, b = clean["metrics"], hurt["metrics"]
    assert [h["epoch"] for h in b["history"]] == [0, 1, 2]
    assert [h["valid_loss"] for h in b["history"]] == [h["valid_loss"] for h in a["history"]]
    assert b["best_valid_loss"] == a["best_valid_loss"]
