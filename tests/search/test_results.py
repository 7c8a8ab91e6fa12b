"""A study's report from its folder: selection on validation only, test for the best trial only, ASHA's
savings, and the sweep plot's points (means and stds over seeds)."""
from __future__ import annotations

import csv
import json

import pytest

from dr4sr.search.plots import sweep_series
from dr4sr.search.results import read_study, write_study_report


def trial(study, tid, point, progress, valid=None, test=None):
    d = study / "trials" / tid
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"trial_id": tid, "point": point}))
    (d / "progress.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "valid_ndcg@20": v}) + "\n"
                                              for e, v in enumerate(progress)))
    if valid is not None:
        (d / "run").mkdir()
        keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
        (d / "run" / "metrics.json").write_text(json.dumps({
            "valid": {k: valid for k in keys}, "test": {k: test for k in keys},
            "epochs": len(progress), "best_epoch": len(progress) - 1}))


@pytest.fixture
def study(tmp_path):
    (tmp_path / "study.json").write_text(json.dumps({
        "name": "s", "objective": "valid_ndcg@20", "kind": "grid", "dimensions": ["regenerate.gamma", "train.seed"],
        "asha": {"max_t": 4, "grace_period": 1, "reduction_factor": 2}}))
    # a: best test but lower validation; b: best validation; c: stopped by ASHA after 1 epoch
    trial(tmp_path, "a", {"regenerate.gamma": 0.0, "train.seed": 0}, [0.1, 0.2, 0.3, 0.3], valid=0.30, test=0.90)
    trial(tmp_path, "b", {"regenerate.gamma": 0.5, "train.seed": 0}, [0.1, 0.2, 0.3, 0.4], valid=0.40, test=0.20)
    trial(tmp_path, "c", {"regenerate.gamma": 0.5, "train.seed": 1}, [0.05])
    trial(tmp_path, "d", {"regenerate.gamma": 0.0, "train.seed": 1}, [0.1, 0.2, 0.2, 0.2], valid=0.20, test=0.50)
    return tmp_path


def test_best_is_chosen_on_validation_and_only_it_shows_test(study):
    summary = write_study_report(study)
    assert summary["best"]["trial_id"] == "b" and summary["best"]["test"]["ndcg@20"] == 0.20
    with open(study / "results.csv") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert rows["b"]["best"] == "1" and float(rows["b"]["test_ndcg@20"]) == 0.20
    assert rows["a"]["test_ndcg@20"] == "" and rows["c"]["test_ndcg@20"] == ""
    assert rows["c"]["status"] == "stopped by ASHA" and rows["c"]["epochs"] == "1"
    assert float(rows["c"]["valid_ndcg@20"]) == 0.05
    # 3 trials ran 4 epochs, c ran 1 of its 4: 13 trial-epochs, 3 saved
    assert summary["trial_epochs_run"] == 13 and summary["trial_epochs_saved_by_asha"] == 3
    assert summary["stopped_by_asha"] == 1 and summary["finished"] == 3
    assert (study / "sweep_regenerate_gamma.png").stat().st_size > 5000


def test_sweep_series_mean_and_std_over_seeds(study):
    _, rows = read_study(study)
    series = sweep_series(rows, "regenerate.gamma", ["regenerate.gamma", "train.seed"], "test", "ndcg@20")
    (points,) = series.values()
    # gamma 0: seeds 0 and 1 finished (0.9, 0.5); gamma 0.5: only seed 0 (c was stopped)
    assert points[0][0] == 0.0 and points[0][1] == pytest.approx(0.7) and points[0][2] == pytest.approx(0.2)
    assert points[1] == (0.5, pytest.approx(0.2), 0.0, 1)


def test_a_trial_cut_off_after_max_t_epochs_is_not_an_asha_stop(study):
    # e reported all max_t = 4 epochs but has no metrics (interrupted, or stopped at the final rung
    # before its test): it is incomplete, and ASHA saved nothing on it
    trial(study, "e", {"regenerate.gamma": 1.0, "train.seed": 0}, [0.1, 0.1, 0.1, 0.1])
    from dr4sr.search.results import asha_savings

    info, rows = read_study(study)
    status = {r["trial_id"]: r["status"] for r in rows}
    assert status["c"] == "stopped by ASHA" and status["e"] == "incomplete"
    saved = asha_savings(info, rows)
    assert saved["stopped_by_asha"] == 1 and saved["trial_epochs_saved_by_asha"] == 3



def test_asha_savings_by_hand(tmp_path):
    # max_t 8 (grace 2, reduction factor 2: rungs at 2 and 4); f and j finished all 8 epochs, g was
    # stopped at the rung of 2, h at the rung of 4. By hand: 8 + 8 + 2 + 4 = 22 trial-epochs run;
    # saved (8 - 2) + (8 - 4) = 10
    (tmp_path / "study.json").write_text(json.dumps({
        "name": "s", "objective": "valid_ndcg@20", "kind": "optuna", "dimensions": ["train.lr"],
        "asha": {"max_t": 8, "grace_period": 2, "reduction_factor": 2}}))
    trial(tmp_path, "f", {"train.lr": 0.001}, [0.1] * 8, valid=0.1, test=0.1)
    trial(tmp_path, "g", {"train.lr": 0.002}, [0.05] * 2)
    trial(tmp_path, "h", {"train.lr": 0.003}, [0.08] * 4)
    (tmp_path / "trials" / "h" / "run").mkdir()  # a run folder without metrics.json: not finished
    trial(tmp_path, "j", {"train.lr": 0.004}, [0.2] * 8, valid=0.2, test=0.3)
    from dr4sr.search.results import asha_savings

    info, rows = read_study(tmp_path)
    assert {r["trial_id"]: r["status"] for r in rows} == {
        "f": "finished", "g": "stopped by ASHA", "h": "stopped by ASHA", "j": "finished"}
    assert asha_savings(info, rows) == {"trials": 4, "stopped_by_asha": 2, "max_t": 8,
                                        "trial_epochs_run": 22, "trial_epochs_saved_by_asha": 10}


def test_optuna_study_gets_a_slice_plot_and_the_retrained_backbone_as_reference(study):
    from dr4sr.search.results import backbone_reference

    info = json.loads((study / "study.json").read_text())
    (study / "study.json").write_text(json.dumps({**info, "kind": "optuna"}))
    assert backbone_reference(study, "valid_ndcg@20") is None
    for seed, (valid, test) in enumerate(((0.1, 0.3), (0.2, 0.5))):
        run = study / "retrain" / f"backbone-seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"valid": {"ndcg@20": valid}, "test": {"ndcg@20": test}}))
    ref = backbone_reference(study, "valid_ndcg@20")
    assert ref["label"] == "backbone (2 seeds)"
    assert ref["valid"] == pytest.approx(0.15) and ref["test"] == pytest.approx(0.4)
    summary = write_study_report(study)
    assert summary["plots"] == [str(study / "slice.png")] and (study / "slice.png").stat().st_size > 5000
    assert not list(study.glob("sweep_*.png"))  # sweeps are for grid studies
