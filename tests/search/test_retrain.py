"""`dr4sr report STUDY --retrain-best`: the validation-best point, the default point and the backbone are
trained on each seed, and the paired tests are those of the runs' own per-user ranks."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dr4sr.cli import main
from tests.search.test_results import trial


@pytest.fixture
def finished_study(tmp_path, tiny_dataset):
    """A study of the pattern variant over train.lr: trial b is best on validation, a on test."""
    study = tmp_path / "study"
    constants = {"run": {"dataset": str(tiny_dataset), "backbone": "sasrec", "variant": "pattern"},
                 "fixed": {"train": {"max_epochs": 2, "patience": 5, "batch_size": 16}},
                 "preset": None, "composition": "regenerated+mined+original", "workers": 1,
                 "store": str(tmp_path / "store"), "data_dir": None}
    study.mkdir()
    (study / "study.json").write_text(json.dumps({
        "name": "lr", "objective": "valid_ndcg@20", "kind": "optuna", "dimensions": ["train.lr"],
        "run_constants": constants}))
    trial(study, "a", {"train.lr": 0.001}, [0.1, 0.2], valid=0.2, test=0.9)
    trial(study, "b", {"train.lr": 0.005}, [0.1, 0.3], valid=0.3, test=0.1)
    return study


def user_ndcg20(run_dir):
    t = pq.read_table(run_dir / "user_metrics.parquet").to_pandas().sort_values("user")
    r = t["rank"].to_numpy().astype(float)
    return np.where(r <= 20, 1 / np.log2(r + 1), 0.0)


def test_retrain_best_trains_three_runs_per_seed_and_tests_them_pairwise(finished_study, capsys):
    assert main(["report", str(finished_study), "--retrain-best", "--seeds", "0", "1"]) == 0
    out = finished_study / "retrain"
    cfg = {n: [json.loads((out / f"{n}-seed{s}" / "metrics.json").read_text())["config"] for s in (0, 1)]
           for n in ("backbone", "default", "best")}
    assert [c["train"]["lr"] for c in cfg["best"]] == [0.005, 0.005]  # trial b's point, not a's
    assert cfg["default"][0]["train"]["lr"] == cfg["backbone"][0]["train"]["lr"] != 0.005  # the default lr
    assert [c["train"]["seed"] for c in cfg["default"]] == [0, 1]
    assert all(c["train"]["max_epochs"] == 2 for cs in cfg.values() for c in cs)  # the study's budget
    metrics = {n: [json.loads((out / f"{n}-seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
               for n in ("backbone", "default", "best")}
    assert metrics["backbone"][0]["variant"] == "backbone" and metrics["best"][0]["variant"] == "pattern"

    result = json.loads((finished_study / "retrain.json").read_text())
    assert result["best_trial"] == "b" and result["best_point"] == {"train.lr": 0.005}
    # the paired test: per-user NDCG@20 from the runs' own ranks, averaged over the two seeds
    for label, (new, base) in {"best vs default": ("best", "default"),
                               "default vs backbone": ("default", "backbone")}.items():
        a = np.mean([user_ndcg20(out / f"{base}-seed{s}") for s in (0, 1)], axis=0)
        b = np.mean([user_ndcg20(out / f"{new}-seed{s}") for s in (0, 1)], axis=0)
        sig = result["paired_tests"][label]
        assert sig["mean_diff"] == pytest.approx(float((b - a).mean()), abs=1e-12)
        expected_p = stats.ttest_rel(b, a).pvalue if (b - a).any() else 1.0
        assert sig["t_pvalue"] == pytest.approx(float(expected_p), rel=1e-9)
    assert result["test"]["best"]["ndcg@20"] == pytest.approx(
        np.mean([m["test"]["ndcg@20"] for m in metrics["best"]]))
    assert "best vs default: per-user NDCG@20 diff" in (finished_study / "retrain.md").read_text()

    # a rerun reuses the finished runs: nothing is trained again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")}
    capsys.readouterr()
    assert main(["report", str(finished_study), "--retrain-best", "--seeds", "0", "1"]) == 0
    assert "[retrain]" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")} == stamps


def test_retrain_best_needs_a_finished_trial_and_a_study_folder(finished_study, tmp_path, capsys):
    for d in (finished_study / "trials").iterdir():
        (d / "run" / "metrics.json").unlink()
    assert main(["report", str(finished_study), "--retrain-best"]) != 0
    assert "no finished trial yet" in capsys.readouterr().err
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "grid.json").write_text("{}")
    assert main(["report", str(grid), "--retrain-best"]) != 0
    assert "--retrain-best needs a `dr4sr tune` folder" in capsys.readouterr().err
