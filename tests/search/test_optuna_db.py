"""Studies stored as Optuna studies (SQLite in the study folder), read back as a user would: through
optuna.load_study, optuna-dashboard's HTTP API, MlflowClient, W&B's offline run files and `dr4sr report`'s
importance table.

One tiny grid study (ASHA stops the second trial: it learns nothing at lr 1e-7 while the first learns the
chain structure at 0.005) and one tiny TPE study run once per module; the tests read their folders."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tiny_data import make_chain_sequences, write_text_dataset

from dr4sr.search.optuna_db import DB_FILE, TUNE_ID
from dr4sr.search.space import load_space
from dr4sr.search.study import StudyOptions, run_study

SPACE = """\
dataset: {dataset}
backbone: sasrec
variant: backbone
composition: original
set:
  train.max_epochs: 2
  train.patience: 2
"""


def make_space(folder: Path, dataset: Path, body: str):
    path = folder / "space.yaml"
    path.write_text(SPACE.format(dataset=dataset) + textwrap.dedent(body))
    return load_space(path)


@pytest.fixture(scope="module")
def grid_study(ray_session, tmp_path_factory):
    """3 lr values run in order, ASHA rungs at epochs 1 and 2: trial 2 (lr 1e-7) is stopped at epoch 1, trial
    3 (lr 0.01) beats trial 1 (0.005) at both rungs and finishes."""
    tmp = tmp_path_factory.mktemp("grid")
    data = write_text_dataset(tmp / "tiny.txt", make_chain_sequences())
    space = make_space(tmp, data, """
        search: {kind: grid, max_concurrent: 1, asha: {max_t: 2, grace_period: 1, reduction_factor: 2}}
        dimensions:
          train.lr: {grid: [0.005, 0.0000001, 0.01]}
        """)
    opts = StudyOptions(tmp / "study", str(tmp / "store"), track="mlflow")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    summary = run_study(space, opts)
    return space, opts, summary


@pytest.fixture(scope="module")
def tpe_study(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tpe")
    data = write_text_dataset(tmp / "tiny.txt", make_chain_sequences())
    space = make_space(tmp, data, """
        search: {kind: optuna, num_trials: 3, seed: 0, max_concurrent: 1}
        dimensions:
          train.lr: {loguniform: [0.001, 0.02]}
          model.dropout: {uniform: [0.0, 0.3]}
        """)
    opts = StudyOptions(tmp / "study", str(tmp / "store"))
    summary = run_study(space, opts)
    return space, opts, summary


def stored(out: Path):
    info = json.loads((out / "study.json").read_text())
    return optuna.load_study(study_name=info["optuna"]["study_name"], storage=f"sqlite:///{out / DB_FILE}")


def rows(out: Path) -> dict:
    return {r["trial_id"]: r for r in csv.DictReader(open(out / "results.csv"))}


@pytest.mark.slow  # one grid study of 3 tiny trials (~1 min on a loaded 2-core machine)
def test_grid_study_is_stored_with_states_values_and_test_metrics(grid_study):
    space, opts, summary = grid_study
    out = Path(opts.out)
    study = stored(out)
    trials = {t.user_attrs[TUNE_ID]: t for t in study.trials}
    assert len(study.trials) == 3 and set(trials) == set(rows(out))
    by_lr = {t.params["train.lr"]: t for t in study.trials}
    assert by_lr[0.0000001].state == TrialState.PRUNED  # what ASHA did, as results.csv says
    assert rows(out)[by_lr[0.0000001].user_attrs[TUNE_ID]]["status"] == "stopped by ASHA"
    assert list(by_lr[0.0000001].intermediate_values) == [1]
    for lr in (0.01, 0.005):
        t = by_lr[lr]
        assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2]
        m = json.loads((Path(t.user_attrs["run_dir"]) / "metrics.json").read_text())
        assert t.value == pytest.approx(m["valid"]["ndcg@20"])  # selection is on validation ...
        assert t.user_attrs["test_ndcg@20"] == pytest.approx(m["test"]["ndcg@20"])  # ... test is a record
        progress = [json.loads(x)
                    for x in (Path(t.user_attrs["trial_dir"]) / "progress.jsonl").read_text().splitlines()]
        assert t.intermediate_values == {p["epoch"]: pytest.approx(p["valid_ndcg@20"]) for p in progress}
    assert summary["best"]["trial_id"] == study.best_trial.user_attrs[TUNE_ID]


@pytest.mark.slow
def test_resuming_a_finished_study_adds_no_trials(grid_study):
    space, opts, _ = grid_study
    import dataclasses

    before = [(t.number, t.state, t.user_attrs[TUNE_ID]) for t in stored(Path(opts.out)).trials]
    run_study(space, dataclasses.replace(opts, resume=True))
    assert [(t.number, t.state, t.user_attrs[TUNE_ID]) for t in stored(Path(opts.out)).trials] == before


@pytest.mark.slow
def test_mlflow_runs_hold_params_epoch_metrics_and_tags(grid_study):
    from mlflow import MlflowClient

    _, opts, _ = grid_study
    out = Path(opts.out)
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name(json.loads((out / "study.json").read_text())["optuna"]["study_name"])
    runs = {r.data.tags["tune_trial_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == set(rows(out))
    for trial_id, row in rows(out).items():
        run = runs[trial_id]
        assert float(run.data.params["train.lr"]) == float(row["train.lr"])
        assert run.data.params["train.max_epochs"] == "2" and run.data.params["variant"] == "backbone"
        history = client.get_metric_history(run.info.run_id, "valid_ndcg_at_20")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, int(row["epochs"]) + 1))
        assert run.data.tags["status"] == row["status"]
        assert run.data.tags["run_dir"] == str(out / "trials" / trial_id / "run")
        if row["status"] == "finished":
            assert run.data.metrics["test_ndcg_at_20"] == pytest.approx(
                json.loads((out / "trials" / trial_id / "run" / "metrics.json").read_text())["test"]["ndcg@20"])


@pytest.mark.slow
def test_report_prints_and_writes_importance_from_the_stored_study(grid_study, capsys):
    from dr4sr.report_cli import report_folder

    _, opts, _ = grid_study
    out = Path(opts.out)
    report_folder(str(out))
    printed = capsys.readouterr().out
    table = list(csv.DictReader(open(out / "importance.csv")))
    assert [(r["parameter"], r["evaluator"], r["completed_trials"]) for r in table] == [("train.lr", "fANOVA", "2")]
    assert "study parameter importance (fANOVA over 2 completed trials, valid_ndcg@20):" in printed
    expected = optuna.importance.get_param_importances(
        stored(out), evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert float(table[0]["importance"]) == pytest.approx(expected["train.lr"], abs=1e-6)
    assert f"wrote {out / 'results.csv'}" in printed and str(out / "importance.csv") in printed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dashboard_lists_the_study_and_its_trials(grid_study):
    _, opts, _ = grid_study
    out, port = Path(opts.out), free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dr4sr"), "dashboard", str(out), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip().endswith(f"http://127.0.0.1:{port}/dashboard (Ctrl-C stops it)")
        deadline = time.time() + 60
        while True:
            try:
                studies = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5))
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:]
                time.sleep(0.5)
        (summary,) = studies["study_summaries"]
        assert summary["study_name"] == stored(out).study_name
        detail = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}"))
        assert sorted(t["state"] for t in detail["trials"]) == ["Complete", "Complete", "Pruned"]
        assert all(any(a["key"] == TUNE_ID for a in t["user_attrs"]) for t in detail["trials"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # the server ends on SIGTERM


@pytest.mark.slow  # a TPE study of 3 tiny trials
def test_tpe_study_is_stored_by_its_searcher(tpe_study):
    space, opts, summary = tpe_study
    out = Path(opts.out)
    study = stored(out)
    assert len(study.trials) == 3 and {t.state for t in study.trials} == {TrialState.COMPLETE}
    assert {t.user_attrs[TUNE_ID] for t in study.trials} == set(rows(out))
    for t in study.trials:
        assert sorted(t.intermediate_values) == [1, 2]  # one value per epoch (step = epoch)
        assert "test_ndcg@20" in t.user_attrs and Path(t.user_attrs["run_dir"]).is_dir()
        assert set(t.params) == {"train.lr", "model.dropout"}
    assert summary["best"]["trial_id"] == study.best_trial.user_attrs[TUNE_ID]
    assert (out / "importance.csv").is_file()


def test_a_new_study_never_joins_a_stored_one(tmp_path):
    from dr4sr.errors import ConfigError
    from dr4sr.search.optuna_db import StudyDB

    db = StudyDB(str(tmp_path), "s@x")
    db.create(resume=False)
    db.create(resume=True)  # a resume loads it
    with pytest.raises(ConfigError, match="already holds the study 's@x'"):
        db.create(resume=False)


def test_importance_notes_too_few_trials_and_single_valued_params(tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from dr4sr.search.importance import write_importance

    study = optuna.create_study(direction="maximize")
    dists = {"a": FloatDistribution(0, 1), "b": CategoricalDistribution([1, 2])}
    study.add_trial(optuna.trial.create_trial(value=0.5, params={"a": 0.1, "b": 1}, distributions=dists))
    lines, path = write_importance(study, tmp_path, "valid_ndcg@20")
    assert lines == ["note: parameter importance needs 2 completed trials; the study has 1"]
    for a, v in ((0.5, 0.7), (0.9, 0.2)):
        study.add_trial(optuna.trial.create_trial(value=v, params={"a": a, "b": 1}, distributions=dists))
    lines, path = write_importance(study, tmp_path, "valid_ndcg@20")
    assert lines[0] == "note: b took one value (1) in the completed trials: no importance"
    assert lines[1].startswith("study parameter importance (fANOVA over 3 completed trials")
    assert [r["parameter"] for r in csv.DictReader(open(path))] == ["a", ""]
    assert (tmp_path / "importance.png").stat().st_size > 5000  # drawn once a parameter varied


@pytest.mark.slow  # a study of one tiny trial
def test_tune_logs_each_trial_as_an_offline_wandb_run(ray_session, tmp_path, monkeypatch):
    from wandb_files import offline_runs

    from dr4sr.search.trial import FINISHED

    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # offline by default: no account needed
    data = write_text_dataset(tmp_path / "tiny.txt", make_chain_sequences())
    space = make_space(tmp_path, data, """
        search: {kind: grid, max_concurrent: 1}
        dimensions:
          train.lr: {grid: [0.005]}
        """)
    opts = StudyOptions(tmp_path / "study", str(tmp_path / "store"), track="wandb")
    trial_id = run_study(space, opts)["best"]["trial_id"]
    run = offline_runs(Path(opts.out) / "wandb")[trial_id]  # named after the trial, run id = trial id
    assert run.run.run_id == trial_id
    trial_dir = Path(opts.out) / "trials" / trial_id
    m = json.loads((trial_dir / "run" / "metrics.json").read_text())
    assert run.summary["test_ndcg@20"] == pytest.approx(m["test"]["ndcg@20"])  # the run's own metrics.json
    assert run.config["train.lr"] == 0.005 and run.config["variant"] == "backbone"
    progress = [json.loads(x) for x in (trial_dir / "progress.jsonl").read_text().splitlines()]
    epochs = [h for h in run.history if "epoch" in h and FINISHED not in h]  # the final result repeats the best
    assert [(h["epoch"], h["valid_ndcg@20"]) for h in epochs] == \
        [(p["epoch"], pytest.approx(p["valid_ndcg@20"])) for p in progress]
