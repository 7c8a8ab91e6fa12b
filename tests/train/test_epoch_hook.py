"""The loop's `on_epoch` hook: every epoch's record reaches it, locally and from Ray Train workers
(through the controller callback), which is how a Tune trial reports to ASHA."""
from __future__ import annotations

import json

import pytest

from dr4sr.train.runner import build_run_config, train_stage


class AppendJson:
    """Picklable hook (it travels to the Ray Train controller): one JSON line per record."""

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def records(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_local_loop_calls_on_epoch_every_epoch(tiny_dataset, tmp_path):
    cfg = build_run_config("sasrec", str(tiny_dataset), {"train": {"max_epochs": 3, "patience": 3}})
    seen = []
    metrics = train_stage(cfg, tmp_path / "run", on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [0, 1, 2]
    assert [r["valid_ndcg@20"] for r in seen] == [h["valid_ndcg@20"] for h in metrics["history"]]


@pytest.mark.slow  # a 2-worker DDP run
def test_ray_train_workers_report_each_epoch_through_the_hook(ray_session, tiny_dataset, tmp_path):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's processes cannot import tests/
    cfg = build_run_config("sasrec", str(tiny_dataset), {"train": {"max_epochs": 2, "patience": 2}})
    log = tmp_path / "epochs.jsonl"
    metrics = train_stage(cfg, tmp_path / "run", workers=2, on_epoch=AppendJson(log))
    got = records(log)
    assert [r["epoch"] for r in got] == [0, 1]  # the final {"done": 1} report is not passed on
    assert got[-1]["valid_ndcg@20"] == pytest.approx(metrics["history"][-1]["valid_ndcg@20"])
