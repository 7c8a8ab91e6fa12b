"""`dr4sr grid --space`: each (dataset, backbone) cell runs the study, and its best trial by validation is
retrained with the grid's seeds as variant `tuned`, which gets its own Table 3 row."""
from __future__ import annotations

import csv
import json

import pytest

from dr4sr.search.grid import GridOptions, finished, run_grid

SPACE = """\
dataset: beauty            # replaced by the grid's dataset
backbone: sasrec           # replaced by the grid's backbone
variant: backbone
set:
  train.max_epochs: 2
  train.patience: 2
search: {kind: grid, max_concurrent: 1}
dimensions:
  train.lr: {grid: [0.00001, 0.01]}
"""


@pytest.mark.slow  # a 2-trial study, the backbone run and the tuned retrain: about 40-60 s on 2 busy cores
def test_grid_space_retrains_the_studys_best_trial_as_tuned(ray_session, tiny_dataset, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "grid"
    opts = GridOptions(out, ["sasrec"], [str(tiny_dataset)], ["backbone"], [1], store=str(tmp_path / "store"),
                       space=str(space), overrides={"train": {"max_epochs": 2, "patience": 2}})
    summary = run_grid(opts)
    assert summary["failed"] == []

    # the study's trials, read from their own run folders: the best by validation NDCG@20
    study = out / "studies" / "tiny" / "sasrec"
    trials = {}
    for trial in study.glob("trials/*/trial.json"):
        point = json.loads(trial.read_text())["point"]
        metrics = json.loads((trial.parent / "run" / "metrics.json").read_text())
        assert metrics["config"]["train"]["lr"] == point["train.lr"]  # each trial ran its own point
        trials[point["train.lr"]] = metrics
    assert sorted(trials) == [0.00001, 0.01]
    valid = {lr: m["valid"]["ndcg@20"] for lr, m in trials.items()}
    assert valid[0.01] != valid[0.00001]  # a real choice: the two points do not tie
    best_lr = max(valid, key=valid.get)
    assert json.loads((study / "tuned.json").read_text())["best"]["point"] == {"train.lr": best_lr}

    # the tuned run: that point retrained with the grid's seed (1; the trials ran with the default seed)
    tuned_dir = out / "tiny" / "sasrec" / "tuned-seed1"
    assert finished(tuned_dir)
    tuned = json.loads((tuned_dir / "metrics.json").read_text())
    assert tuned["config"]["train"]["lr"] == best_lr and tuned["config"]["train"]["seed"] == 1
    assert tuned["config"]["train"]["max_epochs"] == 2 and tuned["variant"] == "backbone"
    assert tuned["config"]["train"]["seed"] != trials[best_lr]["config"]["train"]["seed"]
    assert tuned["train_artifact"] != trials[best_lr]["train_artifact"]  # trained again, not the trial's copy

    # Table 3 has a tuned row for the cell, one seed, with the tuned run's own test numbers
    rows = {r["variant"]: r for r in csv.DictReader(open(out / "table3.csv"))}
    assert set(rows) == {"backbone", "tuned"}
    assert (rows["tuned"]["dataset"], rows["tuned"]["backbone"], rows["tuned"]["seeds"]) == ("tiny", "sasrec", "1")
    assert rows["tuned"]["seed_list"] == "1"
    assert float(rows["tuned"]["ndcg@20_mean"]) == pytest.approx(tuned["test"]["ndcg@20"])
    backbone = json.loads((out / "tiny" / "sasrec" / "backbone-seed1" / "metrics.json").read_text())
    assert float(rows["backbone"]["ndcg@20_mean"]) == pytest.approx(backbone["test"]["ndcg@20"])
