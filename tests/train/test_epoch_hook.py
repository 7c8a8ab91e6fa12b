"""The loop's `on_epoch` hook: every epoch's record reaches it, locally and from Ray Train workers
(through the controller callback), which is how a Tune trial reports to ASHA."""
from __future__ import annotations

import json

from dr4sr.train.runner import build_run_config, train_stage


class AppendJson:
    """A picklable hook: one JSON line per record."""

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


def test_ray_train_hook_passes_epoch_reports_and_drops_the_final_one(tmp_path):
    """EpochHook is what run_on_ray_train adds to the trainer's callbacks for `on_epoch`: it runs in the
    Train controller (so it and its function must pickle) and gets rank 0's metrics of every report."""
    import pickle

    from dr4sr.train.ray_train import EpochHook

    log = tmp_path / "epochs.jsonl"
    hook = pickle.loads(pickle.dumps(EpochHook(AppendJson(log))))
    hook.after_report(None, [{"epoch": 0, "valid_ndcg@20": 0.25}, {"epoch": 0, "valid_ndcg@20": 0.5}], None)
    hook.after_report(None, [{"done": 1}, {"done": 1}], None)  # _loop_per_worker's final report: no epoch
    hook.after_report(None, [{"epoch": 1, "valid_ndcg@20": 0.3}, {"epoch": 1}], None)
    assert records(log) == [{"epoch": 0, "valid_ndcg@20": 0.25}, {"epoch": 1, "valid_ndcg@20": 0.3}]
