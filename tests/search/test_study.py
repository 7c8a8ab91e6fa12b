"""Studies end to end on the tiny chain dataset: a gamma grid that mines and pre-trains once, and an
Optuna TPE + ASHA study that is interrupted and resumed without rerunning its finished trials."""
from __future__ import annotations

import csv
import json
import os
import signal
import textwrap

import pytest
from ray import tune

from dr4sr.search.space import load_space
from dr4sr.search.study import StudyOptions, build_tuner, run_study

BUDGETS = """\
set:
  train.max_epochs: {epochs}
  train.patience: {epochs}
  pretrain.max_epochs: 2
  init.sasrec: {{train: {{max_epochs: 2, patience: 2}}}}
  regen.k: 2
"""


def space_file(tmp_path, dataset, body, epochs=2):
    path = tmp_path / "space.yaml"
    path.write_text(f"dataset: {dataset}\nbackbone: sasrec\nvariant: dr4sr\n" + BUDGETS.format(epochs=epochs)
                    + textwrap.dedent(body))
    return load_space(path)


def artifacts(store):
    return {stage.name: len([p for p in stage.iterdir() if not p.name.startswith(".")])
            for stage in store.iterdir() if stage.is_dir() and not stage.name.startswith(".")}  # not .locks


def test_gamma_study_mines_and_pretrains_once(ray_session, tiny_dataset, tmp_path):
    space = space_file(tmp_path, tiny_dataset, """
        search: {kind: grid, max_concurrent: 1}
        dimensions:
          regenerate.gamma: {grid: [0.0, 0.5, 1.0]}
        """)
    store, out = tmp_path / "store", tmp_path / "study"
    summary = run_study(space, StudyOptions(out, str(store)))
    # one mining, one SASRec init, one pre-training shared by the 3 trials; one regeneration and one
    # target training per gamma
    assert artifacts(store) == {"mine": 1, "pretrain": 1, "regenerate": 3, "train": 1 + 3}
    assert summary["finished"] == 3 and summary["trials"] == 3
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(float(r["regenerate.gamma"]) for r in rows) == [0.0, 0.5, 1.0]
    best = [r for r in rows if r["best"] == "1"]
    assert len(best) == 1 and best[0]["valid_ndcg@20"] == str(max(float(r["valid_ndcg@20"]) for r in rows))
    assert all(r["test_ndcg@20"] == "" for r in rows if r["best"] == "0")
    for r in rows:  # every epoch went to Tune (and to progress.jsonl); the run used this trial's gamma
        tdir = out / "trials" / r["trial_id"]
        assert [json.loads(x)["epoch"] for x in (tdir / "progress.jsonl").read_text().splitlines()] == [1, 2]
        assert json.loads((tdir / "run" / "metrics.json").read_text())["regen_config"]["regenerate"]["gamma"] == \
            float(r["regenerate.gamma"])
    assert (out / "sweep_regenerate_gamma.png").is_file()
    assert list((out / "tune").glob("*/events.out.tfevents.*"))  # TensorBoard logs under the study folder


class InterruptAfter(tune.Callback):
    """Ctrl-C the study after `n` trials finished (Tune saves its state and stops on SIGINT)."""

    def __init__(self, n):
        self.n, self.done = n, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done == self.n:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_tpe_asha_study_is_resumed_without_rerunning_finished_trials(ray_session, tiny_dataset, tmp_path):
    space = space_file(tmp_path, tiny_dataset, """
        search:
          kind: optuna
          num_trials: 5
          seed: 0
          asha: {max_t: 4, grace_period: 1, reduction_factor: 2}
        dimensions:
          regenerate.gamma: {uniform: [0.0, 1.0]}
          train.lr: {loguniform: [0.0001, 0.01]}
        """, epochs=4)
    store, out = tmp_path / "store", tmp_path / "study"
    opts = StudyOptions(out, str(store))
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"name": "t", "objective": space.objective, "kind": "optuna",
                                                "dimensions": ["regenerate.gamma", "train.lr"],
                                                "asha": {"max_t": 4}}))
    build_tuner(space, opts, [InterruptAfter(2)]).fit()
    first = {p.parts[-3]: p.stat().st_mtime_ns for p in out.glob("trials/*/run/metrics.json")}
    started = len(list(out.glob("trials/*/trial.json")))
    assert 1 <= len(first) and started < 5  # interrupted before every trial ran
    summary = run_study(space, StudyOptions(out, str(store), resume=True))
    # the restore went on proposing trials (Tune may drop the one in flight at the interrupt from the count:
    # its searcher state is saved ahead of the experiment state)
    assert started < summary["trials"] <= 5
    again = {p.parts[-3]: p.stat().st_mtime_ns for p in out.glob("trials/*/run/metrics.json")}
    assert {k: again[k] for k in first} == first  # finished trials were not run again
    # ASHA: every trial that was stopped ran fewer than 4 epochs, and the savings add up
    stopped = [r for r in csv.DictReader(open(out / "results.csv")) if r["status"] == "stopped by ASHA"]
    assert summary["trial_epochs_saved_by_asha"] == sum(4 - int(r["epochs"]) for r in stopped)
    assert all(int(r["epochs"]) < 4 for r in stopped)
