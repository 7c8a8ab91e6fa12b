"""Studies end to end on the tiny chain dataset: a gamma grid that mines and pre-trains once, and an
Optuna TPE + ASHA study that is interrupted and resumed without rerunning its finished trials."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from procs import OwnRayProcess
from ray import tune

from dr4sr.search.results import write_study_report
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
    # one mining, one SASRec init, one pre-training shared by the 3 trials; one regeneration, one
    # set of composed rows and one target training per gamma
    assert artifacts(store) == {"mine": 1, "pretrain": 1, "regenerate": 3, "compose": 3, "train": 1 + 3}
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
    # the best point retrained on the trials' own seed is the best trial's run, reused from the store
    from dr4sr.search.retrain import retrain_best

    result = retrain_best(out, [0], log=lambda *_: None)
    best_run = json.loads((out / "trials" / best[0]["trial_id"] / "run" / "metrics.json").read_text())
    again = json.loads((out / "retrain" / "best-seed0" / "metrics.json").read_text())
    assert again["train_artifact"] == best_run["train_artifact"] and again["test"] == best_run["test"]
    assert result["best_point"] == {"regenerate.gamma": float(best[0]["regenerate.gamma"])}


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
    # ASHA with grace period 1, reduction factor 2 and max_t 4 has rungs at epochs 1 and 2 (4 is the top,
    # where trials end on their own): a stopped trial ran 1 or 2 epochs, as Tune's own record of the
    # trial (its result.json) also says; the savings are counted from that record, not from results.csv
    stopped = [r for r in csv.DictReader(open(out / "results.csv")) if r["status"] == "stopped by ASHA"]
    tune_epochs = {r["trial_id"]: tune_recorded_epochs(out / "tune" / r["trial_id"] / "result.json")
                   for r in stopped}
    assert all(int(r["epochs"]) == tune_epochs[r["trial_id"]] in (1, 2) for r in stopped), (stopped, tune_epochs)
    assert summary["stopped_by_asha"] == len(stopped)
    assert summary["trial_epochs_saved_by_asha"] == sum(4 - e for e in tune_epochs.values())


def tune_recorded_epochs(result_json) -> int:
    """Epochs of the trial's last attempt, from the results Tune logged (a restarted trial starts at 1)."""
    epochs = [json.loads(line)["epoch"] for line in result_json.read_text().splitlines() if line.strip()]
    last = max(i for i, e in enumerate(epochs) if e == 1)
    return len(set(epochs[last:]))


# ---------------------------------------------------------------- results from a folder (no Ray)

def fake_trial(study, trial_id, gamma, epochs, marker=None, finished=False):
    d = study / "trials" / trial_id
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({"trial_id": trial_id, "point": {"regenerate.gamma": gamma}}))
    (d / "progress.jsonl").write_text("".join(json.dumps({"epoch": e, "valid_ndcg@20": 0.1 * e + gamma}) + "\n"
                                              for e in range(1, epochs + 1)))
    if marker:
        (d / "ended.json").write_text(json.dumps({"status": marker}))
    if finished:
        (d / "run").mkdir()
        metrics = {k: 0.5 + gamma for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")}
        (d / "run" / "metrics.json").write_text(json.dumps({"epochs": epochs, "best_epoch": epochs - 1,
                                                            "valid": metrics, "test": metrics}))


def test_markers_tell_an_asha_stop_from_an_interrupted_trial(tmp_path, capsys):
    study = tmp_path / "s"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({
        "name": "g", "objective": "valid_ndcg@20", "kind": "optuna", "dimensions": ["regenerate.gamma"],
        "smoke_test": True, "max_epochs": 4, "trial_markers": True, "asha": {"max_t": 4}, "trials_planned": 5,
        "interrupted": "SIGINT"}))
    fake_trial(study, "t1", 0.25, 4, "completed", finished=True)
    fake_trial(study, "t2", 0.0, 1, "completed")  # ASHA stopped it after epoch 1
    fake_trial(study, "t3", 0.5, 2)  # cut off by the interrupt: no marker, no metrics
    summary = write_study_report(study)
    rows = {r["trial_id"]: r for r in csv.DictReader(open(study / "results.csv"))}
    assert {k: r["status"] for k, r in rows.items()} == {"t1": "finished", "t2": "stopped by ASHA",
                                                         "t3": "incomplete"}
    note = "smoke test (4 epochs): not a result; interrupted: 2 of 5 trials finished"
    assert all(r["note"] == note for r in rows.values())
    assert summary["done"] == 2 and summary["planned"] == 5 and summary["trial_epochs_saved_by_asha"] == 3
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "smoke test (4 epochs): not a result"
    assert printed[1].startswith("study g: interrupted: 2 of 5 trials finished (1 stopped by ASHA)")
    ranked = printed[printed.index("ranked by valid_ndcg@20 (validation):") + 1:]
    assert [line.split()[:3] for line in ranked] == [["rank", "trial", "status"], ["1", "t1", "finished"],
                                                      ["2", "t3", "incomplete"], ["3", "t2", "stopped"]]


# ---------------------------------------------------------------- `dr4sr tune` as a user runs it

DR4SR = str(Path(sys.executable).parent / "dr4sr")
# every line a quiet `dr4sr tune` prints; Tune's reporter (boxes, trial tables, "View detailed results",
# its TensorBoard hint into Ray's temp folder) matches none of them
OUR_LINES = re.compile(r"(\[study\] |smoke test |space |fixed: |preset: |note: |study |best by |wrote |ranked by |"
                       r"no results yet: |  |\d+ trials:$)")
TRIAL_LINE = re.compile(r"\[study\] (\d)/3 \w+ finished: regenerate\.gamma=[\d.]+ \| valid_ndcg@20 0\.\d{4} \| "
                        r"4 epochs \| elapsed \d+m\d\ds \| ETA \d+m\d\ds$")
SMOKE = "smoke test (4 epochs): not a result"


class TuneProcess(OwnRayProcess):
    """`dr4sr tune --smoke-test` on a 3-trial gamma grid, with its own Ray."""

    def __init__(self, tmp_path, dataset, out, *extra):
        space = tmp_path / "space.yaml"
        space.write_text("dataset: beauty\nbackbone: sasrec\nvariant: dr4sr\nset: {regen.k: 2}\n"
                         "search: {kind: grid}\ndimensions:\n  regenerate.gamma: {grid: [0.0, 0.5, 1.0]}\n")
        super().__init__([DR4SR, "tune", "--space", str(space), "--dataset", str(dataset), "--out", str(out),
                          "--store", str(tmp_path / "store"), "--smoke-test", *extra])




def assert_quiet(stdout: str) -> None:
    strays = [line for line in stdout.splitlines() if not OUR_LINES.match(line)]
    assert not strays, f"lines not from dr4sr: {strays[:5]}"


def test_sigterm_before_any_trial_exits_143_and_says_so(tiny_dataset, tmp_path):
    out = tmp_path / "study"
    tp = TuneProcess(tmp_path, tiny_dataset, out)
    tp.wait_for(lambda: (out / "study.json").is_file())
    tp.proc.send_signal(signal.SIGTERM)  # what `ray job stop` and `kill` send
    code, stdout, stderr = tp.finish(timeout=300)
    assert code == 143, stderr[-3000:]
    assert stderr.splitlines() == ["dr4sr: interrupted (SIGTERM): 0 of 3 trials finished; "
                                   "rerun with --resume to continue"]
    assert "no trials yet" not in stdout and "interrupted: 0 of 3 trials finished" in stdout
    assert json.loads((out / "study.json").read_text())["interrupted"] == "SIGTERM"
    assert_quiet(stdout)


@pytest.mark.slow  # two smoke studies of 3 trials: ~1.5 min on a quiet 2-core machine
def test_ctrl_c_after_the_first_trial_exits_130_and_resume_finishes(tiny_dataset, tmp_path):
    out = tmp_path / "study"
    tp = TuneProcess(tmp_path, tiny_dataset, out)
    tp.wait_for(lambda: list(out.glob("trials/*/ended.json")))
    os.killpg(tp.proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group
    code, stdout, stderr = tp.finish(timeout=300)
    assert code == 130, stderr[-3000:]
    (line,) = stderr.splitlines()
    done = int(re.fullmatch(r"dr4sr: interrupted: (\d) of 3 trials finished; rerun with --resume to continue",
                            line).group(1))
    assert 1 <= done < 3
    assert_quiet(stdout)
    assert [int(m.group(1)) for m in map(TRIAL_LINE.match, stdout.splitlines()) if m][:1] == [1]
    assert f"study space: interrupted: {done} of 3 trials finished" in stdout
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["note"] for r in rows} == {f"{SMOKE}; interrupted: {done} of 3 trials finished"}
    assert sum(r["status"] == "finished" for r in rows) == done

    tp = TuneProcess(tmp_path, tiny_dataset, out, "--resume")
    code, stdout, stderr = tp.finish()
    assert code == 0, stderr[-3000:]
    assert_quiet(stdout)
    lines = stdout.splitlines()
    assert lines[0] == SMOKE and f"[study] TensorBoard: tensorboard --logdir {out}/tune" in lines
    assert [int(m.group(1)) for m in map(TRIAL_LINE.match, lines) if m] == list(range(done + 1, 4))
    assert f"{SMOKE}\nstudy space: 3 of 3 trials finished (0 stopped by ASHA)" in stdout
    ranked = lines[lines.index("ranked by valid_ndcg@20 (validation):") + 2:]
    # the 3 ranked trials, then the parameter-importance section of the stored study
    assert ([line.split()[0] for line in ranked[:3]] == ["1", "2", "3"]
            and not (ranked[3:] and ranked[3].split()[:1] == ["4"]))
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and {r["note"] for r in rows} == {SMOKE} and {r["status"] for r in rows} == {"finished"}
    assert "interrupted" not in json.loads((out / "study.json").read_text())
    assert (out / "sweep_regenerate_gamma.png").is_file()


# ---------------------------------------------------------------- extending a finished TPE study

def backbone_lr_space(tmp_path, dataset, num_trials):
    path = tmp_path / "lr.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: lr
        dataset: {dataset}
        backbone: sasrec
        variant: backbone
        set: {{train.max_epochs: 2, train.patience: 2}}
        search: {{kind: optuna, num_trials: {num_trials}, seed: 0}}
        dimensions:
          train.lr: {{loguniform: [0.0001, 0.01]}}
        """))
    return load_space(path)


@pytest.mark.slow  # three 2-epoch trials on the tiny dataset
def test_resume_with_more_trials_extends_a_finished_tpe_study(ray_session, tiny_dataset, tmp_path):
    import optuna

    store, out = tmp_path / "store", tmp_path / "study"
    space = backbone_lr_space(tmp_path, tiny_dataset, 2)
    assert run_study(space, StudyOptions(out, str(store)))["finished"] == 2
    first = {p.parts[-3]: p.stat().st_mtime_ns for p in out.glob("trials/*/run/metrics.json")}
    summary = run_study(space, StudyOptions(out, str(store), resume=True, num_trials=3))
    assert summary["finished"] == 3 and summary["planned"] == 3
    assert json.loads((out / "study.json").read_text())["trials_planned"] == 3
    assert (out / "tune-2").is_dir()  # Tune cannot raise a restored experiment's count: a second experiment
    again = {p.parts[-3]: p.stat().st_mtime_ns for p in out.glob("trials/*/run/metrics.json")}
    assert len(again) == 3 and {k: again[k] for k in first} == first  # the first two were not rerun
    study = optuna.load_study(study_name=json.loads((out / "study.json").read_text())["optuna"]["study_name"],
                              storage=f"sqlite:///{out / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["train.lr"] for t in trials}) == 3  # the new trial is a new point
    # a plain resume of the finished, extended study changes nothing
    assert run_study(space, StudyOptions(out, str(store), resume=True))["finished"] == 3
    assert len(optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{out / 'optuna.db'}")
               .get_trials()) == 3


def test_more_trials_need_a_finished_optuna_study(tmp_path, tiny_dataset):
    from dr4sr.errors import ConfigError
    from dr4sr.search.study_folder import extension

    space = backbone_lr_space(tmp_path, tiny_dataset, 2)
    study = tmp_path / "s"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"name": "lr", "objective": "valid_ndcg@20", "kind": "optuna",
                                                  "dimensions": ["train.lr"], "trials_planned": 2,
                                                  "trial_markers": True}))
    fake_trial(study, "a", 0.0, 2, finished=True)
    with pytest.raises(ConfigError, match=r"unfinished \(1 of 2 trials\); resume it with --resume first"):
        extension(study, space, 5)
    fake_trial(study, "b", 0.5, 2, finished=True)
    assert extension(study, space, 5) == 3 and extension(study, space, 2) == 0
    import dataclasses

    grid = dataclasses.replace(space, search=dataclasses.replace(space.search, kind="grid"))
    with pytest.raises(ConfigError, match="grid study"):
        extension(study, grid, 5)
