"""A grid's cells recorded outside its folder, read back as a user would: the Optuna study through
optuna.load_study, MLflow runs through MlflowClient, W&B offline runs through their run files.

The fast tests use a hand-written grid folder (metrics.json with a two-epoch history, status.json with a
failed cell); the slow ones run a tiny smoke grid and a tiny study."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from wandb_files import offline_runs

from dr4sr.search.grid_tracking import GridTracking
from dr4sr.search.optuna_db import DB_FILE

HISTORY = [{"epoch": 0, "loss": 0.9, "valid_ndcg@20": 0.011, "valid_recall@20": 0.05},
           {"epoch": 1, "loss": 0.7, "valid_ndcg@20": 0.017, "valid_recall@20": 0.07}]


def write_run(out: Path, dataset: str, variant: str, valid: float, test: float) -> Path:
    folder = out / dataset / "sasrec" / f"{variant}-seed0"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "valid": {"ndcg@20": valid, "recall@20": 0.07}, "test": {"ndcg@20": test, "recall@20": 0.06},
        "best_epoch": 1, "epochs": 2, "history": HISTORY, "train_artifact": "a1b2", "preset": None,
        "config": {"backbone": "sasrec", "train": {"lr": 0.001, "valid_metric": "ndcg@20"},
                   "model": {"dropout": 0.5}}}))
    return folder


def write_grid(out: Path, datasets: list[str]) -> None:
    runs = [[d, "sasrec", v, 0] for d in datasets for v in ("backbone", "dr4sr")]
    (out / "grid.json").write_text(json.dumps({
        "datasets": datasets, "backbones": ["sasrec"], "baselines": [], "variants": ["backbone", "dr4sr"],
        "seeds": [0], "smoke_test": True, "data": {d: d for d in datasets}, "runs": runs}))


@pytest.fixture
def grid(tmp_path):
    """toys/backbone finished (best epoch 2: valid 0.017), toys/dr4sr failed."""
    out = tmp_path / "grid"
    out.mkdir()
    write_grid(out, ["toys"])
    write_run(out, "toys", "backbone", 0.017, 0.015)
    (out / "status.json").write_text(json.dumps({"runs": {
        "toys/sasrec/backbone/seed 0": {"state": "finished", "started": 1796390000.0, "ended": 1796390090.5},
        "toys/sasrec/dr4sr/seed 0": {"state": "failed", "error": "ValueError: boom"}}}))
    return out


def study_of(out: Path):
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{out / DB_FILE}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{out / DB_FILE}")


def cells(out: Path) -> dict:
    return {t.user_attrs["cell"]: t for t in study_of(out).trials}


def test_ended_cells_become_fixed_trials_once(grid):
    assert GridTracking(grid).record() == {"optuna": 2}
    trials = cells(grid)
    assert set(trials) == {"toys/sasrec/backbone-seed0", "toys/sasrec/dr4sr-seed0"}
    done, failed = trials["toys/sasrec/backbone-seed0"], trials["toys/sasrec/dr4sr-seed0"]
    assert done.state == TrialState.COMPLETE and done.value == 0.017  # the validation the run selected by
    assert done.params == {"dataset": "toys", "backbone": "sasrec", "variant": "backbone", "seed": 0}
    assert done.intermediate_values == {1: 0.011, 2: 0.017}  # epochs counted from 1, as studies report them
    assert done.user_attrs["test_ndcg@20"] == 0.015 and done.user_attrs["train_artifact"] == "a1b2"
    assert done.user_attrs["run_dir"] == str((grid / "toys/sasrec/backbone-seed0").resolve())
    assert done.user_attrs["best_epoch"] == 2 and done.user_attrs["epochs"] == 2
    assert done.duration.total_seconds() == 90.5  # the run's own times, from status.json
    assert failed.state == TrialState.FAIL and failed.user_attrs["error"] == "ValueError: boom"
    assert GridTracking(grid).record() == {"optuna": 0}  # a rerun adds nothing
    assert len(study_of(grid).trials) == 2


def test_a_grid_with_no_ended_cell_has_an_empty_study(tmp_path):
    write_grid(tmp_path, ["toys"])
    assert GridTracking(tmp_path).record() == {"optuna": 0}
    assert study_of(tmp_path).trials == []


def test_a_failed_cell_that_finished_and_a_new_dataset_rebuild_the_study_without_duplicates(grid):
    GridTracking(grid).record()
    write_run(grid, "toys", "dr4sr", 0.02, 0.019)
    GridTracking(grid).record()
    trials = cells(grid)
    assert len(study_of(grid).trials) == 2
    assert trials["toys/sasrec/dr4sr-seed0"].state == TrialState.COMPLETE
    assert trials["toys/sasrec/dr4sr-seed0"].value == 0.02
    # a later grid into the same folder adds a dataset: a categorical's choices are fixed per study
    write_grid(grid, ["toys", "beauty"])
    write_run(grid, "beauty", "backbone", 0.03, 0.025)
    GridTracking(grid).record()
    trials = cells(grid)
    assert len(study_of(grid).trials) == 3 and trials["beauty/sasrec/backbone-seed0"].value == 0.03
    assert trials["beauty/sasrec/backbone-seed0"].distributions["dataset"].choices == ("toys", "beauty")


def test_storage_flag_and_tracking_file(grid, tmp_path):
    other = f"sqlite:///{tmp_path / 'shared.db'}"
    tracking = GridTracking(grid, storage=other, track="mlflow")
    tracking.save()
    again = GridTracking(grid)  # a rerun without the flags keeps them
    assert (again.db.url, again.track) == (other, "mlflow")
    assert again.db.name == f"grid@{grid.name}"
    again.record(tracker=False)
    assert not (grid / DB_FILE).exists()
    assert len(optuna.load_study(study_name=again.db.name, storage=other).trials) == 2


def test_dashboard_backfills_a_grid_folder_and_serves_its_study(grid):
    from dr4sr.dashboard_cli import storage_url

    assert not (grid / DB_FILE).exists()  # e.g. a grid that ran before it was recorded
    assert storage_url(str(grid)) == f"sqlite:///{(grid / DB_FILE).resolve()}"
    assert len(study_of(grid).trials) == 2


def test_mlflow_runs_per_cell(grid, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert GridTracking(grid, track="mlflow").record() == {"optuna": 2, "mlflow": 2}
    client = MlflowClient(f"sqlite:///{grid / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"grid@{grid.name}")
    runs = {r.data.tags["cell"]: r for r in client.search_runs([exp.experiment_id])}
    done = runs["toys/sasrec/backbone-seed0"]
    assert {k: done.data.tags[k] for k in ("dataset", "backbone", "variant", "seed")} == {
        "dataset": "toys", "backbone": "sasrec", "variant": "backbone", "seed": "0"}
    assert done.data.tags["train_artifact"] == "a1b2" and done.info.status == "FINISHED"
    assert done.data.params["train.lr"] == "0.001" and done.data.params["model.dropout"] == "0.5"
    history = sorted(client.get_metric_history(done.info.run_id, "valid_ndcg_at_20"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(1, 0.011), (2, 0.017)]
    assert done.data.metrics["test_ndcg_at_20"] == 0.015 and done.data.metrics["best_valid_ndcg_at_20"] == 0.017
    failed = runs["toys/sasrec/dr4sr-seed0"]
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "ValueError: boom"
    # the failed cell finishes on a rerun: its run is replaced, one run per cell
    write_run(grid, "toys", "dr4sr", 0.02, 0.019)
    assert GridTracking(grid, track="mlflow").record()["mlflow"] == 1
    runs = {r.data.tags["cell"]: r for r in client.search_runs([exp.experiment_id])}
    assert len(runs) == 2 and len(client.search_runs([exp.experiment_id])) == 2
    assert runs["toys/sasrec/dr4sr-seed0"].data.metrics["test_ndcg_at_20"] == 0.019


def test_wandb_offline_runs_per_cell(grid, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline by default
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert GridTracking(grid, track="wandb").record() == {"optuna": 2, "wandb": 2}
    runs = offline_runs(grid / "wandb")
    done = runs["toys/sasrec/backbone-seed0"]
    assert done.tags == ["toys", "sasrec", "backbone", "seed0"] and done.exit_code == 0
    assert done.config["train.lr"] == 0.001 and done.config["variant"] == "backbone"
    assert [(h["_step"], h["valid_ndcg@20"]) for h in done.history] == [(1, 0.011), (2, 0.017)]
    assert done.summary["test_ndcg@20"] == 0.015 and done.summary["train_artifact"] == "a1b2"
    assert runs["toys/sasrec/dr4sr-seed0"].exit_code == 1
    assert runs["toys/sasrec/dr4sr-seed0"].summary["error"] == "ValueError: boom"
    assert GridTracking(grid, track="wandb").record()["wandb"] == 0  # logged before: no second run
    assert len(list((grid / "wandb").glob("offline-run-*"))) == 2


def metrics_of(out: Path, variant: str) -> dict:
    return json.loads((out / "tiny" / "sasrec" / f"{variant}-seed0" / "metrics.json").read_text())


@pytest.mark.slow  # a smoke grid of 2 tiny runs, then a rerun (~1-2 min on a loaded 2-core machine)
def test_smoke_grid_records_its_cells_and_a_rerun_adds_none(ray_session, tiny_dataset, tmp_path, monkeypatch):
    import dataclasses

    from mlflow import MlflowClient

    from dr4sr.search.grid import GridOptions, run_grid

    for var in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    opts = GridOptions(tmp_path / "grid", ["sasrec"], [str(tiny_dataset)], ["backbone", "pattern"], [0],
                       store=str(tmp_path / "store"), smoke_test=True, track="mlflow")
    assert run_grid(opts)["failed"] == []
    out = opts.out
    trials = cells(out)
    assert sorted(trials) == ["tiny/sasrec/backbone-seed0", "tiny/sasrec/pattern-seed0"]
    for variant in ("backbone", "pattern"):
        t, m = trials[f"tiny/sasrec/{variant}-seed0"], metrics_of(out, variant)
        assert t.state == TrialState.COMPLETE and t.params["variant"] == variant and t.params["seed"] == 0
        assert t.value == pytest.approx(m["valid"]["ndcg@20"])
        assert t.intermediate_values == {h["epoch"] + 1: pytest.approx(h["valid_ndcg@20"]) for h in m["history"]}
        assert len(t.intermediate_values) == m["epochs"] == 2  # the smoke budget
        assert t.user_attrs["test_ndcg@20"] == pytest.approx(m["test"]["ndcg@20"])
        assert t.user_attrs["train_artifact"] == m["train_artifact"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"grid@{out.name}")
    runs = {r.data.tags["cell"]: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == sorted(trials)
    run, m = runs["tiny/sasrec/pattern-seed0"], metrics_of(out, "pattern")
    assert (run.data.tags["variant"], run.data.tags["mine_artifact"]) == ("pattern", m["mine_artifact"])
    assert run.data.params["train.max_epochs"] == "2" and run.data.params["backbone"] == "sasrec"
    history = client.get_metric_history(run.info.run_id, "valid_ndcg_at_20")
    assert sorted((h.step, h.value) for h in history) == [(h["epoch"] + 1, pytest.approx(h["valid_ndcg@20"]))
                                                          for h in m["history"]]
    assert run.data.metrics["test_ndcg_at_20"] == pytest.approx(m["test"]["ndcg@20"])

    # a rerun with W&B: nothing to run, no trial added; the cells are backfilled as W&B runs
    before = [(t.number, t.user_attrs["cell"]) for t in study_of(out).trials]
    assert run_grid(dataclasses.replace(opts, track="wandb"))["failed"] == []
    assert [(t.number, t.user_attrs["cell"]) for t in study_of(out).trials] == before
    assert len(client.search_runs([exp.experiment_id])) == 2
    wandb_runs = offline_runs(out / "wandb")
    assert sorted(wandb_runs) == sorted(trials)
    for variant in ("backbone", "pattern"):
        w, m = wandb_runs[f"tiny/sasrec/{variant}-seed0"], metrics_of(out, variant)
        assert w.summary["test_ndcg@20"] == pytest.approx(m["test"]["ndcg@20"])
        assert w.tags == ["tiny", "sasrec", variant, "seed0"]
        assert [h["valid_ndcg@20"] for h in w.history] == pytest.approx([h["valid_ndcg@20"] for h in m["history"]])
